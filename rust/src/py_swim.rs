//! PyO3 layer for the membership machine (`MemberlistMachine`): converts
//! addresses, bytes and actions, and raises `pyln.errors`. No logic here.

use std::net::{IpAddr, SocketAddr};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::swim::plain::PlainNode;
use crate::swim::{Action, Config, SwimError};
use crate::wire::crypto::Keyring;

pub(crate) fn gossip_error(py: Python<'_>, msg: String) -> PyErr {
    crate::py::typed_error(py, "GossipProtocolError", msg)
}

pub(crate) fn swim_err(py: Python<'_>, e: SwimError) -> PyErr {
    gossip_error(py, e.to_string())
}

pub(crate) fn sock(host: &str, port: u16) -> PyResult<SocketAddr> {
    let ip: IpAddr = host.parse().map_err(|_| PyValueError::new_err(format!("not an IP address: {host:?}")))?;
    Ok(SocketAddr::new(ip, port))
}

pub(crate) type PyAction<'py> = (&'static str, String, u16, Bound<'py, PyBytes>, Option<u64>);

pub(crate) fn actions_to_py(py: Python<'_>, actions: Vec<Action>) -> Vec<PyAction<'_>> {
    actions
        .into_iter()
        .map(|a| match a {
            Action::Packet { to, data } => ("packet", to.ip().to_string(), to.port(), PyBytes::new(py, &data), None),
            Action::Stream { to, data, token, .. } => {
                ("stream", to.ip().to_string(), to.port(), PyBytes::new(py, &data), token)
            }
        })
        .collect()
}

/// Applies `overrides` (microsecond durations, counts, flags by field name).
pub(crate) fn build_config(name: &str, profile: &str, overrides: Option<&Bound<'_, PyDict>>) -> PyResult<Config> {
    let mut cfg = match profile {
        "lan" => Config::lan(name),
        "local" => Config::local(name),
        other => return Err(PyValueError::new_err(format!("unknown profile {other:?}: use 'lan' or 'local'"))),
    };
    if let Some(ov) = overrides {
        for (k, v) in ov.iter() {
            let key: String = k.extract()?;
            match key.as_str() {
                "probe_interval" => cfg.probe_interval = v.extract()?,
                "probe_timeout" => cfg.probe_timeout = v.extract()?,
                "indirect_checks" => cfg.indirect_checks = v.extract()?,
                "suspicion_mult" => cfg.suspicion_mult = v.extract()?,
                "suspicion_max_timeout_mult" => cfg.suspicion_max_timeout_mult = v.extract()?,
                "retransmit_mult" => cfg.retransmit_mult = v.extract()?,
                "gossip_interval" => cfg.gossip_interval = v.extract()?,
                "gossip_nodes" => cfg.gossip_nodes = v.extract()?,
                "gossip_to_the_dead_time" => cfg.gossip_to_the_dead_time = v.extract()?,
                "push_pull_interval" => cfg.push_pull_interval = v.extract()?,
                "tcp_timeout" => cfg.tcp_timeout = v.extract()?,
                "udp_buffer_size" => cfg.udp_buffer_size = v.extract()?,
                "enable_compression" => cfg.enable_compression = v.extract()?,
                "disable_tcp_pings" => cfg.disable_tcp_pings = v.extract()?,
                "awareness_max_multiplier" => cfg.awareness_max_multiplier = v.extract()?,
                other => return Err(PyValueError::new_err(format!("unknown memberlist setting {other:?}"))),
            }
        }
    }
    Ok(cfg)
}

pub(crate) fn keyring(py: Python<'_>, keys: Vec<Vec<u8>>) -> PyResult<Option<Keyring>> {
    let mut it = keys.into_iter();
    match it.next() {
        None => Ok(None),
        Some(primary) => Keyring::new(&primary, &it.collect::<Vec<_>>()).map(Some).map_err(|e| gossip_error(py, e.to_string())),
    }
}

pub(crate) fn member_tuple(m: &crate::swim::Member) -> (String, String, u16, u8, u32) {
    (m.name.clone(), m.addr.ip().to_string(), m.addr.port(), m.state, m.incarnation)
}

/// memberlist alone, with a plain delegate (user broadcasts and state).
#[pyclass(name = "MemberlistMachine", module = "pyln._core", unsendable)]
pub struct PyMemberlist {
    inner: PlainNode,
}

#[pymethods]
impl PyMemberlist {
    #[new]
    #[pyo3(signature = (now, name, host, port, profile="lan", keys=Vec::new(), seed=0, overrides=None))]
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
    ) -> PyResult<Self> {
        let cfg = build_config(name, profile, overrides)?;
        let kr = keyring(py, keys)?;
        Ok(PyMemberlist { inner: PlainNode::new(now, cfg, sock(host, port)?, kr, seed) })
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
        self.inner.ml.stream_frame_len(buf).map_err(|e| swim_err(py, e))
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
        self.inner.ml.leave_finished()
    }

    fn broadcast(&mut self, data: Vec<u8>) {
        self.inner.broadcast(data)
    }

    fn send_best_effort(&mut self, host: &str, port: u16, data: &[u8]) -> PyResult<()> {
        self.inner.ml.send_best_effort(sock(host, port)?, data);
        Ok(())
    }

    fn send_reliable(&mut self, host: &str, port: u16, data: &[u8]) -> PyResult<()> {
        self.inner.ml.send_reliable(sock(host, port)?, data);
        Ok(())
    }

    fn set_local_state(&mut self, data: Vec<u8>) {
        self.inner.d.local_state = data;
    }

    fn members(&self) -> Vec<(String, String, u16, u8, u32)> {
        self.inner.ml.members().iter().map(member_tuple).collect()
    }

    fn take_received<'py>(&mut self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        std::mem::take(&mut self.inner.d.received).iter().map(|b| PyBytes::new(py, b)).collect()
    }

    fn take_remote_states<'py>(&mut self, py: Python<'py>) -> Vec<(Bound<'py, PyBytes>, bool)> {
        std::mem::take(&mut self.inner.d.remote_states)
            .iter()
            .map(|(b, j)| (PyBytes::new(py, b), *j))
            .collect()
    }

    fn take_events(&mut self) -> Vec<(&'static str, String, String, u16, u64)> {
        std::mem::take(&mut self.inner.d.events)
            .into_iter()
            .map(|e| (e.kind, e.member.name, e.member.addr.ip().to_string(), e.member.addr.port(), e.at))
            .collect()
    }

    fn health_score(&self) -> u32 {
        self.inner.ml.health_score()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.inner.ml.counters;
        let d = PyDict::new(py);
        d.set_item("packets_sent", c.packets_sent)?;
        d.set_item("packet_bytes_sent", c.packet_bytes_sent)?;
        d.set_item("packets_received", c.packets_received)?;
        d.set_item("packet_bytes_received", c.packet_bytes_received)?;
        d.set_item("streams_sent", c.streams_sent)?;
        d.set_item("stream_bytes_sent", c.stream_bytes_sent)?;
        d.set_item("streams_received", c.streams_received)?;
        d.set_item("stream_bytes_received", c.stream_bytes_received)?;
        d.set_item("bad_packets", c.bad_packets)?;
        d.set_item("probes", c.probes)?;
        d.set_item("probe_failures", c.probe_failures)?;
        d.set_item("queue", self.inner.ml.queue_len())?;
        d.set_item("queue_peak", self.inner.ml.queue_peak())?;
        d.set_item("health_score", self.inner.ml.health_score())?;
        Ok(d)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMemberlist>()?;
    Ok(())
}
