//! Package selection in request bodies: `packages` (`"all"`, `"security"`, names) from the
//! wire into the core's `Packages`, each name checked (422 naming `packages[i]`), and the
//! trigger of a manual rollout (the caller's token name).

use tendhost_api::schedules as wire;
use tendhost_auth::Caller;
use tendhost_core::model::{Packages, Trigger};

use crate::http::error::ApiError;

/// The most package names one request may name.
pub const MAX_PACKAGE_NAMES: usize = 1000;

/// Validates `packages` (the field of an update body).
pub fn packages(packages: wire::Packages) -> Result<Packages, ApiError> {
    Ok(match packages {
        wire::Packages::All => Packages::All,
        wire::Packages::Security => Packages::Security,
        wire::Packages::Names(names) => {
            if names.len() > MAX_PACKAGE_NAMES {
                return Err(ApiError::invalid_value(
                    "packages",
                    format!("at most {MAX_PACKAGE_NAMES} names, not {}", names.len()),
                ));
            }
            for (idx, name) in names.iter().enumerate() {
                tendhost_pkg::selection::validate_name(name).map_err(|message| {
                    ApiError::invalid_value(&format!("packages[{idx}]"), message)
                })?;
            }
            Packages::Names(names)
        }
    })
}

/// `{"api": TOKEN-NAME}` for a request by `caller` (no caller with auth off).
pub fn api_trigger(caller: Option<&Caller>) -> Trigger {
    Trigger::Api(caller.map(|caller| caller.name.clone()))
}
