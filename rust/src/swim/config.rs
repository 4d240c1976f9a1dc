//! memberlist's configuration profiles (DefaultLANConfig, DefaultLocalConfig)
//! with durations in microseconds.

pub const MS: u64 = 1_000;
pub const SEC: u64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub probe_interval: u64,
    pub probe_timeout: u64,
    pub indirect_checks: usize,
    pub suspicion_mult: u32,
    pub suspicion_max_timeout_mult: u32,
    pub retransmit_mult: u32,
    pub gossip_interval: u64,
    pub gossip_nodes: usize,
    pub gossip_to_the_dead_time: u64,
    pub push_pull_interval: u64,
    pub tcp_timeout: u64,
    pub awareness_max_multiplier: u32,
    pub udp_buffer_size: usize,
    pub enable_compression: bool,
    pub disable_tcp_pings: bool,
    /// The protocol version spoken (memberlist default 2; understands 1..=5).
    pub protocol_version: u8,
    /// Encryption version used when sending (1 = no padding, for protocol >= 2).
    pub encryption_version: u8,
    pub dead_node_reclaim_time: u64,
    pub meta: Vec<u8>,
}

impl Config {
    /// DefaultLANConfig.
    pub fn lan(name: &str) -> Self {
        Config {
            name: name.to_string(),
            probe_interval: SEC,
            probe_timeout: 500 * MS,
            indirect_checks: 3,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            retransmit_mult: 4,
            gossip_interval: 200 * MS,
            gossip_nodes: 3,
            gossip_to_the_dead_time: 30 * SEC,
            push_pull_interval: 30 * SEC,
            tcp_timeout: 10 * SEC,
            awareness_max_multiplier: 8,
            udp_buffer_size: 1400,
            enable_compression: true,
            disable_tcp_pings: false,
            protocol_version: 2,
            encryption_version: 1,
            dead_node_reclaim_time: 0,
            meta: Vec::new(),
        }
    }

    /// DefaultLocalConfig: the LAN profile tuned for loopback.
    pub fn local(name: &str) -> Self {
        Config {
            tcp_timeout: SEC,
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: 15 * SEC,
            probe_timeout: 200 * MS,
            probe_interval: SEC,
            gossip_interval: 100 * MS,
            gossip_to_the_dead_time: 15 * SEC,
            ..Config::lan(name)
        }
    }

    /// [pmin, pmax, pcur, dmin, dmax, dcur] as memberlist announces it.
    pub fn vsn(&self) -> Vec<u8> {
        vec![1, 5, self.protocol_version, 0, 0, 0]
    }
}
