//! Benchmark of `pyln_core::wire::networkdb` against Go libnetwork's gogo codec.
//!
//! Plain `harness = false` program (no criterion), like benches/bitseq.rs: each
//! measurement is a loop of ITERS calls, repeated REPS times; the median per
//! call is reported (min/max in brackets), because the bench box is a noisy,
//! shared 2-core machine. Run with `cargo bench --bench networkdb_wire`; it
//! prints a markdown table on stdout and progress on stderr, in a few seconds.
//!
//! The message is the "TableEvent CREATE" vector of
//! shared/vectors/networkdb-wire.json wrapped in a GossipMessage (228 bytes:
//! node-c / 25-char network id / endpoint_table / 64-char key / 100-byte value),
//! built here field by field and checked against the vector's bytes.

use pyln_core::wire::networkdb::{
    decode_gossip, Message, Payload, TableEvent, TableEventRef, TableEventType,
};
use std::hint::black_box;
use std::time::Instant;

// Go libnetwork (gogo proto.Marshal / Unmarshal of the same message, wrapper
// included; figures supplied with the task), and pyln's targets.
const GO_ENCODE_NS: f64 = 148.0;
const GO_DECODE_NS: f64 = 234.0;
const TARGET_ENCODE_NS: f64 = 100.0;
const TARGET_DECODE_NS: f64 = 150.0;

const REPS: usize = 21;
const ITERS: usize = 200_000;

/// The vector's bytes ("hex" of "TableEvent CREATE").
const VECTOR_HEX: &str = "080212df010801102a1a066e6f64652d6322193469327a7477626e3479786362306f6c366c77326f766962712a0e656e64706f696e745f7461626c653240336339663061623865356431633266346136623739383065316432633362346135663665376438633962306131663265336434633562366137393838303731363a64000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60616263";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vector_event() -> TableEvent {
    TableEvent {
        r#type: TableEventType::CREATE,
        l_time: 42,
        node_name: "node-c".into(),
        network_id: "4i2ztwbn4yxcb0ol6lw2ovibq".into(),
        table_name: "endpoint_table".into(),
        key: "3c9f0ab8e5d1c2f4a6b7980e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a79880716".into(),
        value: (0u8..100).collect(),
        residual_reap_time: 0,
    }
}

#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[f64]) -> Stats {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stats {
        median,
        min: v[0],
        max: v[n - 1],
    }
}

/// ns per call of `f`, one sample per rep.
fn measure(mut f: impl FnMut()) -> Stats {
    for _ in 0..ITERS / 10 {
        f(); // warm-up
    }
    let mut samples = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let start = Instant::now();
        for _ in 0..ITERS {
            f();
        }
        samples.push(start.elapsed().as_nanos() as f64 / ITERS as f64);
    }
    stats(&samples)
}

struct Row {
    what: &'static str,
    s: Stats,
    go: Option<f64>,
    target: Option<f64>,
}

fn print_table(rows: &[Row]) {
    println!("| what | pyln ns/op (median) | Go libnetwork | pyln / Go | target | met? |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let go = r.go.map_or("—".into(), |g| format!("{g:.0} ns"));
        let ratio =
            r.go.map_or("—".into(), |g| format!("{:.3}", r.s.median / g));
        let (target, met) = match r.target {
            Some(t) => (
                format!("≤ {t:.0} ns"),
                if r.s.median <= t { "yes" } else { "**NO**" }.to_string(),
            ),
            None => ("—".into(), "n/a (informational)".into()),
        };
        println!(
            "| {} | {:.1} ns (min {:.1}, max {:.1}; n={REPS}) | {go} | {ratio} | {target} | {met} |",
            r.what, r.s.median, r.s.min, r.s.max
        );
    }
}

fn main() {
    let started = Instant::now();
    let wire = unhex(VECTOR_HEX);
    let ev = vector_event();
    assert_eq!(
        ev.encode_gossip(),
        wire,
        "benchmark message differs from the vector"
    );
    assert_eq!(wire.len(), 228);
    let mut rows = Vec::new();

    eprintln!("encode into a reused buffer ...");
    let mut buf = Vec::with_capacity(wire.len());
    let s = measure(|| {
        buf.clear();
        black_box(&ev).encode_gossip_into(&mut buf);
        black_box(&buf);
    });
    rows.push(Row {
        what: "encode TableEvent in GossipMessage (228 B), into a reused Vec",
        s,
        go: Some(GO_ENCODE_NS),
        target: Some(TARGET_ENCODE_NS),
    });

    eprintln!("encode into a new Vec ...");
    let s = measure(|| {
        black_box(black_box(&ev).encode_gossip());
    });
    rows.push(Row {
        what: "encode TableEvent in GossipMessage, new exact-size Vec each call",
        s,
        go: Some(GO_ENCODE_NS),
        target: Some(TARGET_ENCODE_NS),
    });

    eprintln!("decode to owned Message ...");
    let s = measure(|| {
        let m = decode_gossip(black_box(&wire)).unwrap();
        debug_assert!(matches!(m, Message::TableEvent(_)));
        black_box(m);
    });
    rows.push(Row {
        what: "decode_gossip → Message::TableEvent (owned: 5 Strings + Vec)",
        s,
        go: Some(GO_DECODE_NS),
        target: Some(TARGET_DECODE_NS),
    });

    eprintln!("decode borrowed ...");
    let s = measure(|| {
        black_box(TableEventRef::decode_gossip(black_box(&wire)).unwrap());
    });
    rows.push(Row {
        what: "TableEventRef::decode_gossip (borrowed, no allocation)",
        s,
        go: Some(GO_DECODE_NS),
        target: None,
    });

    println!();
    print_table(&rows);
    println!();
    println!(
        "Median over {REPS} loops of {ITERS} calls each; Go figures are gogo \
         proto.Marshal / Unmarshal of the same GossipMessage. Total bench time {:.1} s.",
        started.elapsed().as_secs_f64()
    );
}
