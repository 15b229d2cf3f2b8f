//! Finding the daemon: `--url`/`TENDHOST_URL`, `--token`/`TENDHOST_TOKEN`/`--token-file`,
//! `--cacert`/`TENDHOST_CACERT`; what none of them gives comes from the config file (`--config`,
//! default `tendhost.toml`): its bind address, its own CA and its bootstrap token file. The
//! config file is read only when something is missing, and only then must it be readable.

use std::path::Path;
use std::time::Duration;

use tendhost_client::{Client, ClientBuilder};

use crate::args::ConnectionArgs;
use crate::{ConfigReader, Failure};

/// The client the flags, the environment and the config file describe.
pub(crate) fn client(
    args: &ConnectionArgs,
    config: &Path,
    read_config: ConfigReader<'_>,
) -> Result<Client, Failure> {
    let need_config = args.url.is_none()
        || (args.token.is_none() && args.token_file.is_none())
        || args.cacert.is_none();
    let defaults = if need_config {
        match read_config(config) {
            Ok(defaults) => Some(defaults),
            // Only the URL is indispensable; a missing token or CA may be fine (auth off, TLS off).
            Err(err) if args.url.is_none() => {
                return Err(Failure::usage(format!(
                    "no --url (or TENDHOST_URL), and the config file does not say where the \
                     daemon is: {err}"
                )));
            }
            Err(_) => None,
        }
    } else {
        None
    };
    let Some(url) = args
        .url
        .clone()
        .or_else(|| defaults.as_ref().map(|d| d.url.clone()))
    else {
        return Err(Failure::usage(
            "no --url (or TENDHOST_URL) and no config file",
        ));
    };
    let mut builder = ClientBuilder::new(url)
        .request_timeout(Duration::from_secs(args.timeout.max(1)))
        .connect_timeout(Duration::from_secs(args.timeout.clamp(1, 10)));
    let token_file = args.token_file.clone().or_else(|| {
        if args.token.is_some() {
            None
        } else {
            defaults.as_ref().and_then(|d| d.token_file.clone())
        }
    });
    if let Some(token) = &args.token {
        builder = builder.token(token.trim());
    } else if let Some(path) = token_file {
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Failure::usage(format!("token file {}: {err}", path.display())))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(Failure::usage(format!(
                "token file {}: empty",
                path.display()
            )));
        }
        builder = builder.token(token);
    }
    let cacert = args
        .cacert
        .clone()
        .or_else(|| defaults.as_ref().and_then(|d| d.ca_file.clone()));
    if let Some(path) = cacert {
        let pem = std::fs::read(&path)
            .map_err(|err| Failure::usage(format!("CA file {}: {err}", path.display())))?;
        builder = builder.ca_pem(pem);
    }
    builder.build().map_err(Failure::from)
}
