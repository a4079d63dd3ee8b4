//! `AppState`: everything a handler may use, cheap to clone, passed explicitly.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::password::Hasher;
use crate::auth::tokens::TokenKeys;
use crate::config::Config;
use crate::db::Db;
use crate::node::NodeInfo;
use crate::sync::SyncStatus;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub keys: Arc<TokenKeys>,
    pub hasher: Hasher,
    pub config: Arc<Config>,
    pub node: Arc<NodeInfo>,
    pub metrics: PrometheusHandle,
    /// What the sync agent last saw of the hub.
    pub sync: SyncStatus,
}
