// The peer's REST API (/api/v1) as the page uses it: bearer token from
// sessionStorage, JSON in and out, errors as ApiError.

const KEY = 'musubi.token';
const TIMEOUT_MS = 10000;

/** An error answer of the API: status, message, hint, and the refusal of
 * a refused reservation. */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    super((body && body.error) || fallback || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.hint = (body && body.hint) || '';
    this.refusal = (body && body.refusal) || null;
  }
}

/** The stored token, or "". */
export function token() {
  try {
    return sessionStorage.getItem(KEY) || '';
  } catch {
    return '';
  }
}

/** Stores the token for this tab's session. */
export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}

/** Forgets the token. */
export function clearToken() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    /* storage unavailable: nothing stored */
  }
}

let unauthorized = () => {};

/** Sets what happens on a 401 answer (the login prompt). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/**
 * Calls the API: method, path below /api/v1 ("/vcs"), optional JSON body.
 * Resolves to the decoded JSON (or null for 204); rejects with ApiError for
 * an error answer, or with the fetch error when the peer is unreachable.
 */
export async function call(method, path, body, tok = token()) {
  const headers = { Accept: 'application/json' };
  if (tok) headers.Authorization = `Bearer ${tok}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  init.signal = ctl.signal;
  let res;
  try {
    res = await fetch(new URL(`api/v1${path}`, document.baseURI), init);
  } catch (e) {
    throw new Error(ctl.signal.aborted ? 'the peer did not answer in time' : `the peer cannot be reached (${e.message})`);
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  if (res.status !== 204) {
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data, res.statusText);
    if (res.status === 401) unauthorized(err);
    throw err;
  }
  return data;
}

/** Path segment for a name (VC names are plain, but be safe). */
export function seg(s) {
  return encodeURIComponent(s);
}
