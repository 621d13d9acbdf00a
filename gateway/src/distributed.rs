//! Distributed mode: the NATS bus and the Redis session store.

use anyhow::bail;

use crate::{Deps, GatewayConfig};

pub async fn deps(
    _config: &GatewayConfig,
    _nats_url: &str,
    _redis_url: &str,
) -> anyhow::Result<Deps> {
    bail!("distributed mode is not available in this build yet")
}
