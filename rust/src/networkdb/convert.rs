//! Between the data model's events and networkdb's protobuf messages.

use super::events as ev;
use crate::wire::networkdb as pb;

pub fn table_to_wire(e: &ev::TableEvent) -> pb::TableEvent {
    pb::TableEvent {
        r#type: pb::TableEventType(e.kind as i32),
        l_time: e.ltime,
        node_name: e.node_name.clone(),
        network_id: e.network_id.clone(),
        table_name: e.table_name.clone(),
        key: e.key.clone(),
        value: e.value.clone(),
        residual_reap_time: e.residual_reap_time,
    }
}

pub fn table_from_wire(t: &pb::TableEventRef<'_>) -> Option<ev::TableEvent> {
    Some(ev::TableEvent {
        kind: ev::TableEventType::from_wire(t.r#type.0)?,
        ltime: t.l_time,
        node_name: t.node_name.to_owned(),
        network_id: t.network_id.to_owned(),
        table_name: t.table_name.to_owned(),
        key: t.key.to_owned(),
        value: t.value.to_vec(),
        residual_reap_time: t.residual_reap_time,
    })
}

pub fn network_to_wire(e: &ev::NetworkEvent) -> pb::NetworkEvent {
    pb::NetworkEvent {
        r#type: pb::NetworkEventType(e.kind as i32),
        l_time: e.ltime,
        node_name: e.node_name.clone(),
        network_id: e.network_id.clone(),
    }
}

pub fn network_from_wire(n: &pb::NetworkEvent) -> Option<ev::NetworkEvent> {
    Some(ev::NetworkEvent {
        kind: ev::NetworkEventType::from_wire(n.r#type.0)?,
        ltime: n.l_time,
        node_name: n.node_name.clone(),
        network_id: n.network_id.clone(),
    })
}

pub fn node_to_wire(e: &ev::NodeEvent) -> pb::NodeEvent {
    pb::NodeEvent { r#type: pb::NodeEventType(e.kind as i32), l_time: e.ltime, node_name: e.node_name.clone() }
}

pub fn node_from_wire(n: &pb::NodeEvent) -> Option<ev::NodeEvent> {
    Some(ev::NodeEvent {
        kind: ev::NodeEventType::from_wire(n.r#type.0)?,
        ltime: n.l_time,
        node_name: n.node_name.clone(),
    })
}

pub fn push_pull_to_wire(p: &ev::NetworkPushPull) -> pb::NetworkPushPull {
    pb::NetworkPushPull {
        l_time: p.ltime,
        networks: p
            .networks
            .iter()
            .map(|n| pb::NetworkEntry {
                network_id: n.network_id.clone(),
                l_time: n.ltime,
                node_name: n.node_name.clone(),
                leaving: n.leaving,
            })
            .collect(),
        node_name: p.node_name.clone(),
    }
}

/// An attachment of this node's state as it is sent (nothing copied).
pub fn network_entry_to_wire<'a>(n: &ev::NetworkEntryRef<'a>) -> pb::NetworkEntryRef<'a> {
    pb::NetworkEntryRef { network_id: n.network_id, l_time: n.ltime, node_name: n.node_name, leaving: n.leaving }
}

/// A received attachment as the data model merges it (nothing copied).
pub fn network_entry_from_wire<'a>(n: &pb::NetworkEntryRef<'a>) -> ev::NetworkEntryRef<'a> {
    ev::NetworkEntryRef { network_id: n.network_id, ltime: n.l_time, node_name: n.node_name, leaving: n.leaving }
}
