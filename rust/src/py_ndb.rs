//! PyO3 layer for the networkdb machine (`NetworkDBMachine`): converts and
//! raises `pyln.errors`. No logic here.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::networkdb::networks::NetworkError;
use crate::networkdb::protocol::{NdbError, NdbNode, Settings};
use crate::networkdb::store::TableError;
use crate::networkdb::WatchOp;
use crate::py_swim::{actions_to_py, build_config, keyring, sock, swim_err, PyAction};

fn raise(py: Python<'_>, name: &str, msg: String) -> PyErr {
    crate::py::typed_error(py, name, msg)
}

fn ndb_err(py: Python<'_>, e: NdbError) -> PyErr {
    let name = match &e {
        NdbError::Table(TableError::Exists { .. }) => "EntryExists",
        NdbError::Table(_) => "EntryNotFound",
        NdbError::Network(NetworkError::AlreadyJoined { .. }) => "NetworkAlreadyJoined",
        NdbError::Network(_) => "NetworkNotJoined",
        NdbError::Closed => "DatabaseClosed",
    };
    raise(py, name, e.to_string())
}

fn settings(d: Option<&Bound<'_, PyDict>>, packet_buffer_size: usize) -> PyResult<Settings> {
    let mut s = Settings { packet_buffer_size, ..Settings::default() };
    if let Some(d) = d {
        for (k, v) in d.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                "gossip_interval" => s.gossip_interval = v.extract()?,
                "gossip_fanout" => s.gossip_fanout = v.extract()?,
                "bulk_sync_interval" => s.bulk_sync_interval = v.extract()?,
                "bulk_sync_timeout" => s.bulk_sync_timeout = v.extract()?,
                "reap_period" => s.reap_period = v.extract()?,
                "retry_interval" => s.retry_interval = v.extract()?,
                "rejoin_interval" => s.rejoin_interval = v.extract()?,
                "leave_timeout" => s.leave_timeout = v.extract()?,
                "reap_entry_interval" => s.reap_entry_interval = v.extract()?,
                "max_queue_on_sync" => s.max_queue_on_sync = v.extract()?,
                "table_retransmit_mult" => s.table_retransmit_mult = v.extract()?,
                "eager_delay" => s.eager_delay = v.extract()?,
                other => return Err(PyValueError::new_err(format!("unknown networkdb setting {other:?}"))),
            }
        }
    }
    for (name, v) in [
        ("gossip_interval", s.gossip_interval),
        ("bulk_sync_interval", s.bulk_sync_interval),
        ("reap_period", s.reap_period),
        ("retry_interval", s.retry_interval),
        ("rejoin_interval", s.rejoin_interval),
    ] {
        if v == 0 {
            return Err(PyValueError::new_err(format!("networkdb setting {name} must be positive")));
        }
    }
    Ok(s)
}

fn op_name(op: WatchOp) -> &'static str {
    match op {
        WatchOp::Create => "create",
        WatchOp::Update => "update",
        WatchOp::Delete => "delete",
    }
}

type PyWatch<'py> = (&'static str, String, String, String, Bound<'py, PyBytes>);

/// memberlist plus networkdb as one sans-IO machine; time in µs.
#[pyclass(name = "NetworkDBMachine", module = "pyln._core", unsendable)]
pub struct PyNdb {
    inner: NdbNode,
}

#[pymethods]
impl PyNdb {
    #[new]
    #[pyo3(signature = (now, name, host, port, profile="lan", keys=Vec::new(), seed=0, overrides=None, settings_=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        now: u64,
        name: &str,
        host: &str,
        port: u16,
        profile: &str,
        keys: Vec<Vec<u8>>,
        seed: u64,
        overrides: Option<&Bound<'_, PyDict>>,
        settings_: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let cfg = build_config(name, profile, overrides)?;
        let s = settings(settings_, cfg.udp_buffer_size)?;
        let kr = keyring(py, keys)?;
        Ok(PyNdb { inner: NdbNode::new(now, cfg, s, sock(host, port)?, kr, seed) })
    }

    fn handle_packet(&mut self, now: u64, host: &str, port: u16, data: &[u8]) -> PyResult<()> {
        self.inner.handle_packet(now, sock(host, port)?, data);
        Ok(())
    }

    fn handle_stream<'py>(
        &mut self,
        py: Python<'py>,
        now: u64,
        host: &str,
        port: u16,
        data: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let r = self.inner.handle_stream(now, sock(host, port)?, data).map_err(|e| swim_err(py, e))?;
        Ok(r.map(|b| PyBytes::new(py, &b)))
    }

    #[pyo3(signature = (now, token, data=None))]
    fn handle_stream_reply(&mut self, py: Python<'_>, now: u64, token: u64, data: Option<&[u8]>) -> PyResult<bool> {
        self.inner.handle_stream_reply(now, token, data).map_err(|e| swim_err(py, e))
    }

    fn stream_frame_len(&self, py: Python<'_>, buf: &[u8]) -> PyResult<Option<usize>> {
        self.inner.stream_frame_len(buf).map_err(|e| swim_err(py, e))
    }

    fn poll_timeout(&self) -> u64 {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: u64) {
        self.inner.handle_timeout(now)
    }

    fn take_actions<'py>(&mut self, py: Python<'py>) -> Vec<PyAction<'py>> {
        actions_to_py(py, self.inner.take_actions())
    }

    fn join(&mut self, now: u64, addrs: Vec<(String, u16)>) -> PyResult<Vec<u64>> {
        let addrs = addrs.iter().map(|(h, p)| sock(h, *p)).collect::<PyResult<Vec<_>>>()?;
        Ok(self.inner.join(now, &addrs))
    }

    fn leave(&mut self, now: u64) {
        self.inner.leave(now)
    }

    fn leave_finished(&self) -> bool {
        self.inner.leave_finished()
    }

    fn join_network(&mut self, py: Python<'_>, now: u64, nid: &str) -> PyResult<()> {
        self.inner.join_network(now, nid).map_err(|e| ndb_err(py, e))
    }

    fn leave_network(&mut self, py: Python<'_>, now: u64, nid: &str) -> PyResult<()> {
        self.inner.leave_network(now, nid).map_err(|e| ndb_err(py, e))
    }

    fn create_entry(&mut self, py: Python<'_>, now: u64, table: &str, nid: &str, key: &str, value: &[u8]) -> PyResult<()> {
        self.inner.create_entry(now, table, nid, key, value).map_err(|e| ndb_err(py, e))
    }

    fn update_entry(&mut self, py: Python<'_>, now: u64, table: &str, nid: &str, key: &str, value: &[u8]) -> PyResult<()> {
        self.inner.update_entry(now, table, nid, key, value).map_err(|e| ndb_err(py, e))
    }

    fn delete_entry(&mut self, py: Python<'_>, now: u64, table: &str, nid: &str, key: &str) -> PyResult<()> {
        self.inner.delete_entry(now, table, nid, key).map_err(|e| ndb_err(py, e))
    }

    fn get_entry<'py>(&self, py: Python<'py>, table: &str, nid: &str, key: &str) -> PyResult<Bound<'py, PyBytes>> {
        match self.inner.core.db.get_entry(table, nid, key) {
            Ok(v) => Ok(PyBytes::new(py, v)),
            Err(e) => Err(raise(py, "EntryNotFound", e.to_string())),
        }
    }

    fn get_table_by_network<'py>(&self, py: Python<'py>, table: &str, nid: &str) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v, _) in self.inner.core.db.table_by_network(table, nid) {
            d.set_item(k, PyBytes::new(py, v))?;
        }
        Ok(d)
    }

    fn take_watch_events<'py>(&mut self, py: Python<'py>) -> Vec<PyWatch<'py>> {
        self.inner
            .take_watch_events()
            .into_iter()
            .map(|w| (op_name(w.op), w.table, w.network_id, w.key, PyBytes::new(py, &w.value)))
            .collect()
    }

    fn cluster_peers(&self) -> Vec<(String, String, u16)> {
        self.inner.cluster_peers().into_iter().map(|(n, a)| (n, a.ip().to_string(), a.port())).collect()
    }

    fn network_peers(&self, nid: &str) -> Vec<(String, String, u16)> {
        self.inner.network_peers(nid).into_iter().map(|(n, a)| (n, a.ip().to_string(), a.port())).collect()
    }

    fn members(&self) -> Vec<(String, String, u16, u8, u32)> {
        self.inner.ml.members().iter().map(crate::py_swim::member_tuple).collect()
    }

    fn install_key(&mut self, py: Python<'_>, key: &[u8]) -> PyResult<()> {
        match self.inner.ml.keyring_mut() {
            Some(kr) => kr.install(key).map_err(|e| raise(py, "BadRequest", e.to_string())),
            None => Err(raise(py, "Forbidden", "encryption is not enabled on this node".into())),
        }
    }

    fn use_key(&mut self, py: Python<'_>, key: &[u8]) -> PyResult<()> {
        match self.inner.ml.keyring_mut() {
            Some(kr) => kr.use_key(key).map_err(|e| raise(py, "BadRequest", e.to_string())),
            None => Err(raise(py, "Forbidden", "encryption is not enabled on this node".into())),
        }
    }

    fn remove_key(&mut self, py: Python<'_>, key: &[u8]) -> PyResult<()> {
        match self.inner.ml.keyring_mut() {
            Some(kr) => kr.remove(key).map_err(|e| raise(py, "Forbidden", e.to_string())),
            None => Err(raise(py, "Forbidden", "encryption is not enabled on this node".into())),
        }
    }

    fn stats<'py>(&mut self, py: Python<'py>, now: u64) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.inner.stats(now) {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyNdb>()?;
    Ok(())
}
