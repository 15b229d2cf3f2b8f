// api.js: the one way the page talks to the daemon's API. Same origin, the session cookie
// rides along (HttpOnly: the page never sees it); every state change is JSON (the API's
// browser rule). An error keeps the API's own words: `{error: {code, message, details}}`.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let onUnauthorized = () => {};

// Called when the API answers 401 (the session ended): the app shows the login form.
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'unreachable', `the daemon cannot be reached (${err.message})`, null);
  }
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) {
    const error = json && json.error;
    if (response.status === 401 && path !== '/session') onUnauthorized();
    throw new ApiError(
      response.status,
      error ? error.code : 'http_' + response.status,
      error ? error.message : `${response.status} ${response.statusText}`,
      error ? error.details : null,
    );
  }
  return json;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);

// A query string from an object; arrays repeat the key, empty values are left out.
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null && item !== '') search.append(key, item);
    }
  }
  const text = search.toString();
  return text ? '?' + text : '';
}

// What the daemon's OpenAPI document says exists, so the page shows features (schedules,
// approval gates, security-only updates, health checks) only where the API has them.
let features = null;

export async function loadFeatures() {
  const doc = await get('/openapi.json');
  const paths = doc.paths || {};
  const schemas = (doc.components && doc.components.schemas) || {};
  const props = (name) => Object.keys((schemas[name] && schemas[name].properties) || {});
  features = {
    paths: new Set(Object.keys(paths)),
    updateRequest: props('UpdateRequest'),
    fleetUpdate: props('FleetUpdateRequest'),
    hostDetail: props('HostDetail'),
  };
  return features;
}

export function has(path) {
  return !!features && features.paths.has(path);
}

export function featureProps(schema) {
  return (features && features[schema]) || [];
}
