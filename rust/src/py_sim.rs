//! PyO3 layer of the simulator (`Simulation`): parameters in as a dict,
//! the report out as a dict. No logic here.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString};

use crate::py::typed_error;
use crate::sim::scenario::{Params, Report, Runner, Stats, Value};

fn stats<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("p50", s.p50)?;
    d.set_item("p99", s.p99)?;
    d.set_item("max", s.max)?;
    d.set_item("mean", s.mean)?;
    d.set_item("count", s.count)?;
    Ok(d)
}

fn report<'py>(py: Python<'py>, r: &Report) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("nodes", r.nodes)?;
    d.set_item("duration_s", r.duration_s)?;
    d.set_item("seed", r.seed)?;
    d.set_item("loss", r.loss)?;
    d.set_item("scenario", &r.scenario)?;
    d.set_item("bootstrap", &r.bootstrap)?;
    d.set_item("entry_convergence_ms", stats(py, &r.entry_convergence)?)?;
    d.set_item("writes", r.writes)?;
    d.set_item("writes_converged", r.writes_converged)?;
    d.set_item("writes_abandoned", r.writes_abandoned)?;
    d.set_item("membership_convergence_ms", r.membership_convergence_ms)?;
    let evs = PyList::empty(py);
    for (kind, at, conv) in &r.membership_events {
        let e = PyDict::new(py);
        e.set_item("kind", kind)?;
        e.set_item("at_s", at)?;
        e.set_item("converged_ms", conv)?;
        evs.append(e)?;
    }
    d.set_item("membership_events", evs)?;
    d.set_item("failure_detection_ms", r.failure_detection_ms)?;
    d.set_item("bytes_per_node_per_s", r.bytes_per_node_per_s)?;
    d.set_item(
        "bytes_received_per_node_per_s",
        r.bytes_received_per_node_per_s,
    )?;
    d.set_item("msgs_per_node_per_s", r.msgs_per_node_per_s)?;
    d.set_item(
        "msgs_received_per_node_per_s",
        r.msgs_received_per_node_per_s,
    )?;
    d.set_item("false_failures", r.false_failures)?;
    d.set_item("max_healthy_dead_ms", r.max_healthy_dead_ms)?;
    d.set_item("suspicion_bound_ms", r.suspicion_bound_ms)?;
    d.set_item("healthy_dead_violations", r.healthy_dead_violations)?;
    d.set_item("resurrections", r.resurrections)?;
    d.set_item("tables_converged", r.tables_converged)?;
    d.set_item("mismatched_nodes", r.mismatched_nodes)?;
    d.set_item("membership_converged", r.membership_converged)?;
    d.set_item("seed_saw_all_dead", r.seed_saw_all_dead)?;
    d.set_item("converged", r.converged)?;
    d.set_item("peak_memberlist_queue", r.peak_memberlist_queue)?;
    d.set_item("mean_peak_memberlist_queue", r.mean_peak_memberlist_queue)?;
    d.set_item("peak_table_queue", r.peak_table_queue)?;
    d.set_item("events", r.events)?;
    d.set_item("setup_wall_s", r.setup_wall_s)?;
    d.set_item("run_wall_s", r.run_wall_s)?;
    d.set_item("threads", r.threads)?;
    d.set_item("rss_bytes", r.rss_bytes)?;
    d.set_item("memory_per_node_bytes", r.memory_per_node_bytes)?;
    let series = PyDict::new(py);
    series.set_item("t_s", &r.series_t)?;
    series.set_item("bytes_per_node_per_s", &r.series_bytes)?;
    series.set_item("msgs_per_node_per_s", &r.series_msgs)?;
    d.set_item("series", series)?;
    let seen = PyDict::new(py);
    seen.set_item("t_ms", &r.seen_t_ms)?;
    seen.set_item("fraction", &r.seen_fraction)?;
    d.set_item("seen", seen)?;
    Ok(d)
}

/// One simulated cluster: `Simulation(params)` builds it, `advance(seconds)`
/// runs it, `report()` checks and measures.
#[pyclass(name = "Simulation", module = "pyln._core", unsendable)]
pub struct PySimulation {
    inner: Runner,
}

#[pymethods]
impl PySimulation {
    #[new]
    fn new(py: Python<'_>, params: &Bound<'_, PyDict>) -> PyResult<Self> {
        crate::py::keep_freed_pages();
        let mut p = Params::default();
        for (k, v) in params.iter() {
            let key: String = k.extract()?;
            let value = if v.is_instance_of::<PyString>() {
                Value::Str(v.extract()?)
            } else if v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>() {
                Value::Num(v.extract()?)
            } else {
                return Err(typed_error(
                    py,
                    "BadRequest",
                    format!("parameter {key}: must be a number or a name"),
                ));
            };
            p.set(&key, value)
                .map_err(|e| typed_error(py, "BadRequest", e.to_string()))?;
        }
        let inner = Runner::new(p).map_err(|e| typed_error(py, "BadRequest", e.to_string()))?;
        Ok(PySimulation { inner })
    }

    /// Runs `seconds` more of virtual time (not past the end); True when done.
    fn advance(&mut self, seconds: f64) -> bool {
        self.inner.advance((seconds.max(0.0) * 1e6) as u64)
    }

    /// Fraction of the run done, in [0, 1].
    fn progress(&self) -> f64 {
        self.inner.progress()
    }

    fn done(&self) -> bool {
        self.inner.done()
    }

    /// Virtual seconds since the measured run started.
    fn now(&self) -> f64 {
        self.inner.now().saturating_sub(self.inner.t0) as f64 / 1e6
    }

    /// Events processed so far.
    fn events(&self) -> u64 {
        self.inner.sim.events_processed
    }

    /// Runs to the end, checks, and returns the report (a dict).
    fn report<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.inner.report();
        report(py, &r)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySimulation>()?;
    Ok(())
}
