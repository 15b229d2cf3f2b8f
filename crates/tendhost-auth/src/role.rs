//! Roles and the one route-to-role table. Least privilege: `read` sees, `operate` acts on the
//! hosts the daemon already manages, `admin` changes what it manages and reads the audit
//! trail. Routes are matched by their template (`/hosts/{name}/check`), as the router and the
//! OpenAPI document name them. A route missing from the table needs `admin`, so a route added
//! later is closed until someone decides otherwise; the daemon's test walks its OpenAPI
//! document against this table.

use std::fmt;
use std::str::FromStr;

/// What a token may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Read,
    Operate,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Operate, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `required` allows.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "read" => Ok(Role::Read),
            "operate" => Ok(Role::Operate),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected \"read\", \"operate\" or \"admin\")"
            )),
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed: health, the API reference and its assets.
    Open,
    /// A token with at least this role.
    Role(Role),
}

/// Routes open without a token (exact templates), and open prefixes (the docs' assets).
/// `/session` logs in and out (it checks the token itself); `/` redirects to the dashboard,
/// whose assets under `/ui` show nothing but what the API answers.
const OPEN: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/"),
    ("POST", "/session"),
    ("DELETE", "/session"),
];
const OPEN_PREFIXES: &[&str] = &["/docs", "/ui"];

/// Routes that change something and need `operate`. Any other non-GET route needs `admin`
/// (`POST /hosts`, `DELETE /hosts/{name}`, `POST /tls/renew`, `POST /notifications/{name}/test`).
const OPERATE: &[(&str, &str)] = &[
    ("POST", "/hosts/{name}/check"),
    ("POST", "/hosts/{name}/update"),
    ("POST", "/hosts/{name}/reboot"),
    ("POST", "/hosts/{name}/retry"),
    ("POST", "/hosts/{name}/acknowledge"),
    ("POST", "/fleet/check"),
    ("POST", "/fleet/update"),
    ("POST", "/rollouts/{id}/cancel"),
    ("POST", "/rollouts/{id}/resume"),
    ("POST", "/schedules/{name}/run"),
    ("POST", "/schedules/{name}/pause"),
    ("POST", "/schedules/{name}/resume"),
];

/// Read-only routes that are not GETs: asking for a WebSocket ticket changes nothing.
const READ_NON_GET: &[(&str, &str)] = &[("POST", "/ws/ticket")];

/// GET routes that need more than `read`.
const ADMIN_GET_PREFIXES: &[&str] = &["/audit"];

/// The access a request needs, by method and route template. `HEAD` is a `GET`.
pub fn required_access(method: &str, route: &str) -> Access {
    let method = if method.eq_ignore_ascii_case("HEAD") {
        "GET"
    } else {
        method
    };
    let is = |table: &[(&str, &str)]| {
        table
            .iter()
            .any(|(m, r)| m.eq_ignore_ascii_case(method) && *r == route)
    };
    let under = |prefix: &&str| {
        route == *prefix
            || route
                .strip_prefix(*prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if method.eq_ignore_ascii_case("GET") {
        if is(OPEN) || OPEN_PREFIXES.iter().any(under) {
            return Access::Open;
        }
        if ADMIN_GET_PREFIXES.iter().any(under) {
            return Access::Role(Role::Admin);
        }
        return Access::Role(Role::Read);
    }
    if is(OPEN) {
        Access::Open
    } else if is(READ_NON_GET) {
        Access::Role(Role::Read)
    } else if is(OPERATE) {
        Access::Role(Role::Operate)
    } else {
        Access::Role(Role::Admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: &str, route: &str, expected: Access) {
        assert_eq!(required_access(method, route), expected, "{method} {route}");
    }

    #[test]
    fn the_table() {
        use Access::{Open, Role as R};
        check("GET", "/health", Open);
        check("HEAD", "/health", Open);
        check("GET", "/openapi.json", Open);
        check("GET", "/docs", Open);
        check("GET", "/docs/scalar.js", Open);
        check("GET", "/docsx", R(Role::Read));
        check("GET", "/", Open);
        check("GET", "/ui", Open);
        check("GET", "/ui/app.js", Open);
        check("GET", "/uix", R(Role::Read));
        check("POST", "/session", Open);
        check("DELETE", "/session", Open);
        check("GET", "/session", R(Role::Read));
        check("GET", "/fleet/summary", R(Role::Read));
        check("POST", "/ui/app.js", R(Role::Admin));
        check("POST", "/health", R(Role::Admin));
        check("GET", "/hosts", R(Role::Read));
        check("GET", "/hosts/{name}", R(Role::Read));
        check("GET", "/ws/events", R(Role::Read));
        check("GET", "/metrics", R(Role::Read));
        check("POST", "/ws/ticket", R(Role::Read));
        check("POST", "/hosts/{name}/check", R(Role::Operate));
        check("post", "/hosts/{name}/update", R(Role::Operate));
        check("POST", "/rollouts/{id}/resume", R(Role::Operate));
        check("POST", "/schedules/{name}/pause", R(Role::Operate));
        check("GET", "/schedules", R(Role::Read));
        check("POST", "/hosts", R(Role::Admin));
        check("DELETE", "/hosts/{name}", R(Role::Admin));
        check("GET", "/audit", R(Role::Admin));
        check("GET", "/auditx", R(Role::Read));
        check("GET", "/notifications", R(Role::Read));
        check("POST", "/notifications/{name}/test", R(Role::Admin));
        check("PUT", "/something/new", R(Role::Admin));
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Admin.allows(Role::Operate));
        assert!(Role::Operate.allows(Role::Read));
        assert!(!Role::Read.allows(Role::Operate));
        assert!(!Role::Operate.allows(Role::Admin));
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().unwrap_err().contains("\"root\""));
    }
}
