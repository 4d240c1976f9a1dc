//! networkdb wire codec against libnetwork's own bytes
//! (shared/vectors/networkdb-wire.json, made by gogo/protobuf at 68aac7a), and
//! property tests: decoding never panics, encoding round-trips.

use proptest::prelude::*;
use pyln_core::wire::networkdb::*;
use serde_json::Value;
use std::path::PathBuf;

fn vectors() -> Vec<Value> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/networkdb-wire.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("vectors are JSON");
    doc["vectors"].as_array().expect("vectors array").clone()
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn i(v: &Value, k: &str) -> i32 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0) as i32
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// The message a vector's "fields" describe.
fn expected(v: &Value) -> Message {
    let f = &v["fields"];
    match v["gossip"]["type"].as_str().unwrap() {
        "NODE_EVENT" => Message::NodeEvent(NodeEvent {
            r#type: NodeEventType(i(f, "type_num")),
            l_time: u(f, "l_time"),
            node_name: s(f, "node_name"),
        }),
        "NETWORK_EVENT" => Message::NetworkEvent(NetworkEvent {
            r#type: NetworkEventType(i(f, "type_num")),
            l_time: u(f, "l_time"),
            node_name: s(f, "node_name"),
            network_id: s(f, "network_id"),
        }),
        "TABLE_EVENT" => Message::TableEvent(TableEvent {
            r#type: TableEventType(i(f, "type_num")),
            l_time: u(f, "l_time"),
            node_name: s(f, "node_name"),
            network_id: s(f, "network_id"),
            table_name: s(f, "table_name"),
            key: s(f, "key"),
            value: unhex(&s(f, "value_hex")),
            residual_reap_time: i(f, "residual_reap_time"),
        }),
        "PUSH_PULL" => Message::PushPull(NetworkPushPull {
            l_time: u(f, "l_time"),
            networks: f["networks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| NetworkEntry {
                    network_id: s(n, "network_id"),
                    l_time: u(n, "l_time"),
                    node_name: s(n, "node_name"),
                    leaving: b(n, "leaving"),
                })
                .collect(),
            node_name: s(f, "node_name"),
        }),
        "BULK_SYNC" => Message::BulkSync(BulkSyncMessage {
            l_time: u(f, "l_time"),
            unsolicited: b(f, "unsolicited"),
            node_name: s(f, "node_name"),
            networks: f["networks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect(),
            payload: unhex(&s(f, "payload_hex")),
        }),
        "COMPOUND" => Message::Compound(CompoundMessage {
            messages: f["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| SimpleMessage {
                    payload: unhex(&s(m, "Payload_hex")),
                })
                .collect(),
        }),
        other => panic!("unknown vector type {other}"),
    }
}

#[test]
fn all_vectors_both_ways() {
    let vs = vectors();
    assert_eq!(vs.len(), 14);
    for v in &vs {
        let name = v["name"].as_str().unwrap();
        let inner = unhex(v["inner_hex"].as_str().unwrap());
        let wrapped = unhex(v["hex"].as_str().unwrap());
        let gtype = MessageType(v["gossip"]["type_num"].as_i64().unwrap() as i32);
        assert_eq!(
            unhex(v["gossip"]["data_hex"].as_str().unwrap()),
            inner,
            "{name}"
        );
        let msg = expected(v);
        assert_eq!(msg.message_type(), gtype, "{name}");

        // Encode: inner, wrapped, wrapper by hand, and into a reused buffer.
        assert_eq!(msg.encode(), inner, "{name}: inner encoding");
        assert_eq!(msg.encoded_len(), inner.len(), "{name}");
        assert_eq!(msg.encode_gossip(), wrapped, "{name}: wrapped encoding");
        let g = GossipMessage {
            r#type: gtype,
            data: inner.clone(),
        };
        assert_eq!(g.encode(), wrapped, "{name}: GossipMessage");
        let mut buf = vec![0xee; 3];
        buf.clear();
        msg.encode_gossip_into(&mut buf);
        msg.encode_gossip_into(&mut buf);
        assert_eq!(buf, [wrapped.clone(), wrapped.clone()].concat(), "{name}");

        // Decode: one call, and envelope then payload.
        assert_eq!(decode_gossip(&wrapped).as_ref(), Ok(&msg), "{name}");
        assert_eq!(GossipMessage::decode(&wrapped), Ok(g), "{name}");
        let r = GossipMessageRef::decode(&wrapped).unwrap();
        assert_eq!((r.r#type, r.data), (gtype, &inner[..]), "{name}");
        assert_eq!(
            Message::decode_payload(gtype, &inner).as_ref(),
            Ok(&msg),
            "{name}"
        );

        match &msg {
            Message::TableEvent(t) => {
                assert_eq!(TableEventRef::decode(&inner), Ok(t.as_ref()), "{name}");
                assert_eq!(
                    TableEventRef::decode_gossip(&wrapped),
                    Ok(t.as_ref()),
                    "{name}"
                );
                assert_eq!(t.as_ref().encode_gossip(), wrapped, "{name}");
                assert_eq!(t.as_ref().gossip_len(), wrapped.len(), "{name}");
            }
            Message::Compound(c) => {
                let parts: Vec<&[u8]> = c.messages.iter().map(|m| &m.payload[..]).collect();
                assert_eq!(make_compound(&parts), wrapped, "{name}: make_compound");
                assert_eq!(split_compound(&inner).unwrap(), parts, "{name}");
                assert_eq!(split_compound_gossip(&wrapped).unwrap(), parts, "{name}");
                // The parts are the TableEvent CREATE / UPDATE vectors.
                for p in parts {
                    assert!(matches!(decode_gossip(p), Ok(Message::TableEvent(_))));
                }
            }
            Message::BulkSync(bs) => {
                let parts = split_compound_gossip(&bs.payload).unwrap();
                assert_eq!(parts.len(), 2, "{name}");
            }
            _ => {}
        }
    }
}

#[test]
fn the_benchmark_vector_is_there() {
    let v = vectors()
        .into_iter()
        .find(|v| v["name"] == "TableEvent CREATE")
        .unwrap();
    assert_eq!(unhex(v["hex"].as_str().unwrap()).len(), 228);
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9-]{1,30}", any::<String>()]
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

fn varint_value() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0u64..300, any::<u64>()]
}

fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![0i32..5, any::<i32>()]
}

fn table_event() -> impl Strategy<Value = TableEvent> {
    (
        enum_value(),
        varint_value(),
        (name(), name(), name(), name()),
        blob(),
        enum_value(),
    )
        .prop_map(|(t, l, (node, net, table, key), value, rrt)| TableEvent {
            r#type: TableEventType(t),
            l_time: l,
            node_name: node,
            network_id: net,
            table_name: table,
            key,
            value,
            residual_reap_time: rrt,
        })
}

fn network_entry() -> impl Strategy<Value = NetworkEntry> {
    (name(), varint_value(), name(), any::<bool>()).prop_map(|(n, l, node, leaving)| NetworkEntry {
        network_id: n,
        l_time: l,
        node_name: node,
        leaving,
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (enum_value(), varint_value(), name()).prop_map(|(t, l, n)| {
            Message::NodeEvent(NodeEvent {
                r#type: NodeEventType(t),
                l_time: l,
                node_name: n,
            })
        }),
        (enum_value(), varint_value(), name(), name()).prop_map(|(t, l, n, id)| {
            Message::NetworkEvent(NetworkEvent {
                r#type: NetworkEventType(t),
                l_time: l,
                node_name: n,
                network_id: id,
            })
        }),
        table_event().prop_map(Message::TableEvent),
        (
            varint_value(),
            prop::collection::vec(network_entry(), 0..5),
            name()
        )
            .prop_map(|(l, networks, n)| Message::PushPull(NetworkPushPull {
                l_time: l,
                networks,
                node_name: n,
            })),
        (
            varint_value(),
            any::<bool>(),
            name(),
            prop::collection::vec(name(), 0..5),
            blob()
        )
            .prop_map(|(l, unsolicited, n, networks, payload)| {
                Message::BulkSync(BulkSyncMessage {
                    l_time: l,
                    unsolicited,
                    node_name: n,
                    networks,
                    payload,
                })
            }),
        prop::collection::vec(blob(), 0..5).prop_map(|ps| Message::Compound(CompoundMessage {
            messages: ps
                .into_iter()
                .map(|payload| SimpleMessage { payload })
                .collect(),
        })),
    ]
}

/// Bytes that look like protobuf more often than uniform noise does: valid keys
/// of small field numbers with every wire type, and lengths near the truth.
fn protobufish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(
            prop_oneof![
                (1u8..16, 0u8..8).prop_map(|(f, w)| vec![(f << 3) | w]),
                (0u8..40).prop_map(|n| vec![n]),
                Just(vec![
                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
                ]),
                prop::collection::vec(any::<u8>(), 0..8),
            ],
            0..40
        )
        .prop_map(|chunks| chunks.concat()),
    ]
}

fn decode_everything(buf: &[u8]) {
    let _ = decode_gossip(buf);
    let _ = GossipMessage::decode(buf);
    let _ = NodeEvent::decode(buf);
    let _ = NetworkEvent::decode(buf);
    let _ = NetworkEntry::decode(buf);
    let _ = NetworkPushPull::decode(buf);
    let _ = TableEvent::decode(buf);
    let _ = TableEventRef::decode(buf);
    let _ = TableEventRef::decode_gossip(buf);
    let _ = BulkSyncMessage::decode(buf);
    let _ = CompoundMessage::decode(buf);
    let _ = split_compound(buf);
    let _ = split_compound_gossip(buf);
    for t in 0..8 {
        let _ = Message::decode_payload(MessageType(t), buf);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn decode_never_panics(buf in protobufish()) {
        decode_everything(&buf);
        // Any message that decodes re-encodes to bytes that decode the same.
        for t in 1..7 {
            if let Ok(m) = Message::decode_payload(MessageType(t), &buf) {
                let again = m.encode();
                prop_assert_eq!(again.len(), m.encoded_len());
                prop_assert_eq!(Message::decode_payload(MessageType(t), &again), Ok(m));
            }
        }
    }

    #[test]
    fn messages_round_trip(m in message()) {
        let inner = m.encode();
        prop_assert_eq!(inner.len(), m.encoded_len());
        let back = Message::decode_payload(m.message_type(), &inner);
        prop_assert_eq!(back.as_ref(), Ok(&m));
        let wrapped = m.encode_gossip();
        let g = GossipMessage { r#type: m.message_type(), data: inner };
        prop_assert_eq!(&wrapped, &g.encode());
        prop_assert_eq!(decode_gossip(&wrapped), Ok(m));
        // A truncated message never panics (and is usually an error).
        for cut in 0..wrapped.len() {
            decode_everything(&wrapped[..cut]);
        }
    }

    #[test]
    fn table_event_ref_and_owned_agree(t in table_event()) {
        let wrapped = t.encode_gossip();
        prop_assert_eq!(wrapped.len(), t.gossip_len());
        prop_assert_eq!(&t.as_ref().encode_gossip(), &wrapped);
        prop_assert_eq!(TableEventRef::decode_gossip(&wrapped), Ok(t.as_ref()));
    }

    #[test]
    fn compounds_round_trip(parts in prop::collection::vec(blob(), 0..6)) {
        let c = make_compound(&parts);
        let got = split_compound_gossip(&c).unwrap();
        prop_assert_eq!(got.len(), parts.len());
        for (g, p) in got.iter().zip(&parts) {
            prop_assert_eq!(*g, &p[..]);
        }
        let owned = CompoundMessage {
            messages: parts.iter().map(|p| SimpleMessage { payload: p.clone() }).collect(),
        };
        prop_assert_eq!(owned.encode_gossip(), c);
    }
}
