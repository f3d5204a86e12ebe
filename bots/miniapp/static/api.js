// The store's JSON API (docs/storefront.md) with the host's credentials on every request:
// Telegram: `Authorization: tma <Telegram.WebApp.initData>`; WeChat: `Authorization: wxh5 <the session token the
// /h5/ page carries in <meta name="store-session">>`.

const BASE = '/app/api';

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || '');
    this.status = status; // 0: the store could not be reached
    this.code = error.code || (status === 0 ? 'offline' : 'unknown');
    this.error = error;
  }
}

export function credentials(host) {
  if (host === 'wechat') {
    const meta = document.querySelector('meta[name="store-session"]');
    return 'wxh5 ' + (meta ? meta.content : '');
  }
  const tg = window.Telegram && window.Telegram.WebApp;
  return 'tma ' + ((tg && tg.initData) || '');
}

export function makeApi(host) {
  return async function api(method, path, body) {
    const init = { method, headers: { Authorization: credentials(host) }, cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(BASE + path, init);
    } catch (e) {
      throw new ApiError(0, null);
    }
    let data = null;
    try { data = await response.json(); } catch (e) { /* not JSON: an error below */ }
    if (!response.ok || data === null) throw new ApiError(response.ok ? 500 : response.status, data);
    return data;
  };
}
