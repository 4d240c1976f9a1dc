//! PyO3 layer for networkdb's wire codec (`crate::wire::networkdb`): batch and
//! single-message functions on plain tuples, registered into `pyln._core`.
//!
//! A message is a tuple whose first item is its GossipMessage type, then its
//! fields in field-number order (python/pyln/_core.pyi spells every shape out):
//!
//! - NETWORK_EVENT (1): `(1, type, l_time, node_name, network_id)`
//! - TABLE_EVENT (2): `(2, type, l_time, node_name, network_id, table_name, key, value, residual_reap_time)`
//! - PUSH_PULL (3): `(3, l_time, [(network_id, l_time, node_name, leaving), ...], node_name)`
//! - BULK_SYNC (4): `(4, l_time, unsolicited, node_name, [network_id, ...], payload)`
//! - COMPOUND (5): `(5, [payload, ...])`
//! - NODE_EVENT (6): `(6, type, l_time, node_name)`
//!
//! Decode errors raise `pyln.errors.WireDecodeError`; malformed arguments raise
//! `TypeError` / `OverflowError` / `ValueError` naming the item and field.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use pyo3::FromPyObject;

use crate::py::typed_error;
use crate::wire::networkdb::{
    self, BulkSyncMessage, CompoundMessage, DecodeError, Encode, GossipMessageRef, Message,
    MessageType, NetworkEntry, NetworkEvent, NetworkEventType, NetworkPushPull, NodeEvent,
    NodeEventType, Payload, SimpleMessage, TableEventRef, TableEventType,
};

fn decode_err(py: Python<'_>, e: DecodeError) -> PyErr {
    typed_error(py, "WireDecodeError", e.to_string())
}

/// The same exception, its message prefixed with `prefix: `.
fn prefixed(py: Python<'_>, e: PyErr, prefix: &str) -> PyErr {
    let msg = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    PyErr::from_type(e.get_type(py), format!("{prefix}: {msg}"))
}

/// Runs `f` on each item of a list, tuple or other iterable (not str/bytes);
/// errors get the index of the item in front.
fn each<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    mut f: impl FnMut(&Bound<'py, PyAny>) -> PyResult<()>,
) -> PyResult<()> {
    let py = obj.py();
    let at = |i: usize, e: PyErr| prefixed(py, e, &format!("{what} {i}"));
    if let Ok(list) = obj.cast::<PyList>() {
        for (i, item) in list.iter().enumerate() {
            f(&item).map_err(|e| at(i, e))?;
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        for (i, item) in t.iter().enumerate() {
            f(&item).map_err(|e| at(i, e))?;
        }
    } else if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "expected a list of {what}s, not {}",
            obj.get_type().name()?
        )));
    } else {
        for (i, item) in obj.try_iter()?.enumerate() {
            f(&item?).map_err(|e| at(i, e))?;
        }
    }
    Ok(())
}

fn tuple_of<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    n: usize,
    what: &str,
) -> PyResult<&'a Bound<'py, PyTuple>> {
    match obj.cast::<PyTuple>() {
        Ok(t) if t.len() == n => Ok(t),
        Ok(t) => Err(PyTypeError::new_err(format!(
            "{what} must be a tuple of {n} items, not {}",
            t.len()
        ))),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what} must be a tuple of {n} items, not {}",
            obj.get_type().name()?
        ))),
    }
}

/// Item `i` of `t` as `T`; a failure names the field.
#[inline]
fn field<'a, 'py, T>(t: &'a Bound<'py, PyTuple>, i: usize, name: &str) -> PyResult<T>
where
    T: FromPyObject<'a, 'py>,
    T::Error: Into<PyErr>,
{
    t.get_borrowed_item(i)?
        .extract::<T>()
        .map_err(|e| prefixed(t.py(), e.into(), name))
}

/// A TableEvent from items `at..at + 8` of `t`, borrowing its strings and value.
#[inline]
fn table_event_at<'a>(t: &'a Bound<'_, PyTuple>, at: usize) -> PyResult<TableEventRef<'a>> {
    Ok(TableEventRef {
        r#type: TableEventType(field(t, at, "type")?),
        l_time: field(t, at + 1, "l_time")?,
        node_name: field(t, at + 2, "node_name")?,
        network_id: field(t, at + 3, "network_id")?,
        table_name: field(t, at + 4, "table_name")?,
        key: field(t, at + 5, "key")?,
        value: field(t, at + 6, "value")?,
        residual_reap_time: field(t, at + 7, "residual_reap_time")?,
    })
}

/// A message tuple, parsed: table events borrow, the rest are owned.
enum Outgoing<'a> {
    Table(TableEventRef<'a>),
    Other(Message),
}

fn message_from<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Outgoing<'a>> {
    let t = obj
        .cast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err("a message must be a tuple (message_type, *fields)"))?;
    if t.is_empty() {
        return Err(PyTypeError::new_err(
            "a message must be a tuple (message_type, *fields)",
        ));
    }
    let mt = MessageType(field(t, 0, "message_type")?);
    let (n, name) = match mt {
        MessageType::NETWORK_EVENT => (5, "a NETWORK_EVENT"),
        MessageType::TABLE_EVENT => (9, "a TABLE_EVENT"),
        MessageType::PUSH_PULL => (4, "a PUSH_PULL"),
        MessageType::BULK_SYNC => (6, "a BULK_SYNC"),
        MessageType::COMPOUND => (2, "a COMPOUND"),
        MessageType::NODE_EVENT => (4, "a NODE_EVENT"),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown message type {}",
                other.0
            )))
        }
    };
    let t = tuple_of(obj, n, &format!("{name} message"))?;
    Ok(match mt {
        MessageType::TABLE_EVENT => Outgoing::Table(table_event_at(t, 1)?),
        MessageType::NETWORK_EVENT => Outgoing::Other(Message::NetworkEvent(NetworkEvent {
            r#type: NetworkEventType(field(t, 1, "type")?),
            l_time: field(t, 2, "l_time")?,
            node_name: field(t, 3, "node_name")?,
            network_id: field(t, 4, "network_id")?,
        })),
        MessageType::NODE_EVENT => Outgoing::Other(Message::NodeEvent(NodeEvent {
            r#type: NodeEventType(field(t, 1, "type")?),
            l_time: field(t, 2, "l_time")?,
            node_name: field(t, 3, "node_name")?,
        })),
        MessageType::PUSH_PULL => {
            let mut networks = Vec::new();
            each(&t.get_item(2)?, "network", |item| {
                let e = tuple_of(item, 4, "a network entry")?;
                networks.push(NetworkEntry {
                    network_id: field(e, 0, "network_id")?,
                    l_time: field(e, 1, "l_time")?,
                    node_name: field(e, 2, "node_name")?,
                    leaving: field(e, 3, "leaving")?,
                });
                Ok(())
            })
            .map_err(|e| prefixed(t.py(), e, "networks"))?;
            Outgoing::Other(Message::PushPull(NetworkPushPull {
                l_time: field(t, 1, "l_time")?,
                networks,
                node_name: field(t, 3, "node_name")?,
            }))
        }
        MessageType::BULK_SYNC => {
            let mut networks = Vec::new();
            each(&t.get_item(4)?, "network", |item| {
                networks.push(item.extract::<String>()?);
                Ok(())
            })
            .map_err(|e| prefixed(t.py(), e, "networks"))?;
            Outgoing::Other(Message::BulkSync(BulkSyncMessage {
                l_time: field(t, 1, "l_time")?,
                unsolicited: field(t, 2, "unsolicited")?,
                node_name: field(t, 3, "node_name")?,
                networks,
                payload: field::<&[u8]>(t, 5, "payload")?.to_vec(),
            }))
        }
        _ => {
            let mut messages = Vec::new();
            each(&t.get_item(1)?, "payload", |item| {
                messages.push(SimpleMessage {
                    payload: item.extract::<&[u8]>()?.to_vec(),
                });
                Ok(())
            })
            .map_err(|e| prefixed(t.py(), e, "payloads"))?;
            Outgoing::Other(Message::Compound(CompoundMessage { messages }))
        }
    })
}

fn table_tuple<'py>(py: Python<'py>, m: &TableEventRef<'_>) -> PyResult<Bound<'py, PyAny>> {
    table_tuple_cached(py, m, &mut StrCache::default())
}

/// Strings already made in this batch for the fields that repeat across table
/// events (node, network and table names): a repeat gets the same `str` object
/// instead of a new one. A few slots per field, replaced round-robin.
#[derive(Default)]
struct StrCache<'py> {
    slots: [[CacheSlot<'py>; CACHE_SLOTS]; 3],
    next: [usize; 3],
}

const CACHE_SLOTS: usize = 8;

/// A string's UTF-8 and the `str` made from it.
type CacheSlot<'py> = Option<(String, Bound<'py, PyString>)>;

impl<'py> StrCache<'py> {
    #[inline]
    fn get(&mut self, py: Python<'py>, field: usize, s: &str) -> Bound<'py, PyString> {
        let slots = &mut self.slots[field];
        for (text, obj) in slots.iter().flatten() {
            if text == s {
                return obj.clone();
            }
        }
        let obj = PyString::new(py, s);
        let victim = &mut slots[self.next[field]];
        self.next[field] = (self.next[field] + 1) % CACHE_SLOTS;
        match victim {
            Some((text, cached)) => {
                text.clear();
                text.push_str(s);
                *cached = obj.clone();
            }
            empty => *empty = Some((s.to_owned(), obj.clone())),
        }
        obj
    }
}

fn table_tuple_cached<'py>(
    py: Python<'py>,
    m: &TableEventRef<'_>,
    cache: &mut StrCache<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok((
        MessageType::TABLE_EVENT.0,
        m.r#type.0,
        m.l_time,
        cache.get(py, 0, m.node_name),
        cache.get(py, 1, m.network_id),
        cache.get(py, 2, m.table_name),
        m.key,
        PyBytes::new(py, m.value),
        m.residual_reap_time,
    )
        .into_pyobject(py)?
        .into_any())
}

fn message_tuple<'py>(py: Python<'py>, m: &Message) -> PyResult<Bound<'py, PyAny>> {
    let t = m.message_type().0;
    let obj = match m {
        Message::TableEvent(e) => return table_tuple(py, &e.as_ref()),
        Message::NetworkEvent(e) => (t, e.r#type.0, e.l_time, &e.node_name, &e.network_id)
            .into_pyobject(py)?
            .into_any(),
        Message::NodeEvent(e) => (t, e.r#type.0, e.l_time, &e.node_name)
            .into_pyobject(py)?
            .into_any(),
        Message::PushPull(p) => {
            let nets = p
                .networks
                .iter()
                .map(|n| (&n.network_id, n.l_time, &n.node_name, n.leaving));
            (t, p.l_time, PyList::new(py, nets)?, &p.node_name)
                .into_pyobject(py)?
                .into_any()
        }
        Message::BulkSync(b) => (
            t,
            b.l_time,
            b.unsolicited,
            &b.node_name,
            PyList::new(py, &b.networks)?,
            PyBytes::new(py, &b.payload),
        )
            .into_pyobject(py)?
            .into_any(),
        Message::Compound(c) => {
            let parts = c.messages.iter().map(|s| PyBytes::new(py, &s.payload));
            (t, PyList::new(py, parts)?).into_pyobject(py)?.into_any()
        }
    };
    Ok(obj)
}

/// Decodes a GossipMessage into a message tuple; table events without copying
/// through Rust strings.
fn decode_one<'py>(
    py: Python<'py>,
    buf: &[u8],
    cache: &mut StrCache<'py>,
) -> PyResult<Bound<'py, PyAny>> {
    let g = GossipMessageRef::decode(buf).map_err(|e| decode_err(py, e))?;
    if g.r#type == MessageType::TABLE_EVENT {
        let m = TableEventRef::decode(g.data).map_err(|e| decode_err(py, e))?;
        return table_tuple_cached(py, &m, cache);
    }
    let m = Message::decode_payload(g.r#type, g.data).map_err(|e| decode_err(py, e))?;
    message_tuple(py, &m)
}

/// Encodes table events, each `(type, l_time, node_name, network_id,
/// table_name, key, value, residual_reap_time)`, each wrapped in a GossipMessage.
#[pyfunction]
fn encode_table_events<'py>(
    py: Python<'py>,
    events: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let mut out = Vec::with_capacity(events.len().unwrap_or(0));
    let mut buf = Vec::with_capacity(256);
    each(events, "table event", |item| {
        let t = tuple_of(item, 8, "a table event")?;
        let ev = table_event_at(t, 0)?;
        buf.clear();
        ev.encode_gossip_into(&mut buf);
        out.push(PyBytes::new(py, &buf));
        Ok(())
    })?;
    PyList::new(py, out)
}

/// Decodes GossipMessages into message tuples.
#[pyfunction]
fn decode_gossip<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let mut out = Vec::with_capacity(messages.len().unwrap_or(0));
    let mut cache = StrCache::default();
    each(messages, "message", |item| {
        let buf: &[u8] = item.extract()?;
        out.push(decode_one(py, buf, &mut cache)?);
        Ok(())
    })?;
    PyList::new(py, out)
}

/// Encodes a message tuple wrapped in a GossipMessage.
#[pyfunction]
fn encode_message<'py>(py: Python<'py>, msg: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let buf = match message_from(msg)? {
        Outgoing::Table(t) => t.encode_gossip(),
        Outgoing::Other(m) => m.encode_gossip(),
    };
    Ok(PyBytes::new(py, &buf))
}

/// Encodes a message tuple's message alone (the GossipMessage's `data`).
#[pyfunction]
fn encode_payload<'py>(py: Python<'py>, msg: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let buf = match message_from(msg)? {
        Outgoing::Table(t) => t.encode(),
        Outgoing::Other(m) => m.encode(),
    };
    Ok(PyBytes::new(py, &buf))
}

/// Decodes one GossipMessage into a message tuple.
#[pyfunction]
fn decode_message<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    decode_one(py, data, &mut StrCache::default())
}

/// Decodes a bare message (a GossipMessage's `data`) of type `message_type`.
#[pyfunction]
fn decode_payload<'py>(
    py: Python<'py>,
    message_type: i32,
    data: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    let m =
        Message::decode_payload(MessageType(message_type), data).map_err(|e| decode_err(py, e))?;
    message_tuple(py, &m)
}

/// Builds a COMPOUND GossipMessage from encoded GossipMessages.
#[pyfunction]
fn make_compound<'py>(py: Python<'py>, parts: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let mut held = Vec::with_capacity(parts.len().unwrap_or(0));
    each(parts, "part", |item| {
        held.push(item.cast::<PyBytes>()?.clone());
        Ok(())
    })?;
    let slices: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
    Ok(PyBytes::new(py, &networkdb::make_compound(&slices)))
}

/// The encoded GossipMessages inside a COMPOUND GossipMessage.
#[pyfunction]
fn split_compound<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let parts = networkdb::split_compound_gossip(data).map_err(|e| decode_err(py, e))?;
    PyList::new(py, parts.into_iter().map(|p| PyBytes::new(py, p)))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_table_events, m)?)?;
    m.add_function(wrap_pyfunction!(decode_gossip, m)?)?;
    m.add_function(wrap_pyfunction!(encode_message, m)?)?;
    m.add_function(wrap_pyfunction!(decode_message, m)?)?;
    m.add_function(wrap_pyfunction!(encode_payload, m)?)?;
    m.add_function(wrap_pyfunction!(decode_payload, m)?)?;
    m.add_function(wrap_pyfunction!(make_compound, m)?)?;
    m.add_function(wrap_pyfunction!(split_compound, m)?)?;
    Ok(())
}
