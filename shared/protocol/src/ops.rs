//! The operational bodies both services answer with: `/healthz` and `/readyz`, and the
//! Engine.IO endpoint's HTTP error body. (No TypeScript declarations: the web board reads
//! none of them; probes and load balancers do.)

use serde::Serialize;

/// `{"status": ..., "checks"?: {...}}` of `/healthz` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub status: HealthStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<HealthChecks>,
}

impl Health {
    /// `/healthz`: the process answers.
    pub const OK: Health = Health {
        status: HealthStatus::Ok,
        checks: None,
    };
    /// `/readyz` of a gateway that is draining.
    pub const DRAINING: Health = Health {
        status: HealthStatus::Draining,
        checks: None,
    };

    /// `/readyz`: ready or not, with what was checked.
    pub fn readiness(ready: bool, checks: Option<HealthChecks>) -> Health {
        Health {
            status: if ready {
                HealthStatus::Ready
            } else {
                HealthStatus::NotReady
            },
            checks,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HealthStatus {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "not ready")]
    NotReady,
    #[serde(rename = "draining")]
    Draining,
}

/// What a readiness check looked at; a service names only its own dependencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HealthChecks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<CheckState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<CheckState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Ok,
    Unavailable,
}

/// Engine.IO's HTTP error body, `{"code": 1, "message": "Session ID unknown"}` (the codes
/// and messages of the reference server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineIoError {
    pub code: u16,
    pub message: &'static str,
}
