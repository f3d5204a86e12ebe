// A small vendored bridge to the Telegram client: `window.Telegram.WebApp` for the part the shop page uses,
// written from Telegram's documented Mini App protocol (core.telegram.org/api/web-events, /api/bots/webapps).
// Telegram's own telegram-web-app.js lives on telegram.org and the page loads nothing from elsewhere, so this
// stands in for it. It installs itself ONLY when no `window.Telegram.WebApp` exists (a client or a test that
// provides one keeps its own).
//
// Launch parameters arrive in the URL fragment: #tgWebAppData=<initData>&tgWebAppVersion=..&tgWebAppThemeParams=..
// Methods go out through window.TelegramWebviewProxy.postEvent(type, json) (mobile and desktop apps), else
// window.external.notify(json), else (Telegram Web shows the app in an iframe) parent.postMessage(json).
// Events come in through window.Telegram.WebView.receiveEvent(type, data), or as `message` events from the parent.

const w = window;
const WEB_ORIGIN = 'https://web.telegram.org';

function parseQuery(text) {
  const out = {};
  for (const part of text.split('&')) {
    if (!part) continue;
    const at = part.indexOf('=');
    const key = at < 0 ? part : part.slice(0, at);
    const value = at < 0 ? '' : part.slice(at + 1);
    out[decode(key)] = decode(value);
  }
  return out;
}

function decode(text) {
  try { return decodeURIComponent(text.replace(/\+/g, '%20')); } catch (e) { return text; }
}

function parseJson(text, fallback) {
  try { return JSON.parse(text); } catch (e) { return fallback; }
}

function install() {
  const params = parseQuery(w.location.hash.replace(/^#/, ''));
  const isIframe = w.parent != null && w.parent !== w;
  const handlers = {}; // client events (snake_case) and the app's own (camelCase, through onEvent)

  function on(type, fn) { (handlers[type] = handlers[type] || []).push(fn); }
  function off(type, fn) { handlers[type] = (handlers[type] || []).filter((f) => f !== fn); }
  function emit(type, ...args) {
    for (const fn of (handlers[type] || []).slice()) {
      try { fn(...args); } catch (e) { console.error(e); }
    }
  }

  function postEvent(type, data = '') {
    if (w.TelegramWebviewProxy !== undefined) {
      w.TelegramWebviewProxy.postEvent(type, JSON.stringify(data));
    } else if (w.external && 'notify' in w.external) {
      w.external.notify(JSON.stringify({ eventType: type, eventData: data }));
    } else if (isIframe) {
      w.parent.postMessage(JSON.stringify({ eventType: type, eventData: data }), WEB_ORIGIN);
    }
  }

  function receiveEvent(type, data) { emit('client:' + type, data); }

  if (isIframe) {
    w.addEventListener('message', (event) => {
      if (event.source !== w.parent) return;
      const msg = parseJson(event.data, null);
      if (msg && msg.eventType) receiveEvent(msg.eventType, msg.eventData);
    });
  }

  // -- the WebApp object ----------------------------------------------------------------------------------
  const initData = params.tgWebAppData || '';
  const initDataUnsafe = {};
  for (const [k, v] of Object.entries(parseQuery(initData))) initDataUnsafe[k] = /^[[{]/.test(v) ? parseJson(v, v) : v;

  const app = {
    initData,
    initDataUnsafe,
    version: params.tgWebAppVersion || '6.0',
    platform: params.tgWebAppPlatform || 'unknown',
    themeParams: {},
    colorScheme: 'light',
    ready() { postEvent('web_app_ready'); },
    expand() { postEvent('web_app_expand'); },
    close() { postEvent('web_app_close'); },
    onEvent(type, fn) { on(type, fn); },
    offEvent(type, fn) { off(type, fn); },
  };

  function setTheme(theme) {
    if (!theme || typeof theme !== 'object') return;
    app.themeParams = { ...app.themeParams, ...theme };
    const bg = /^#([0-9a-f]{6})$/i.exec(app.themeParams.bg_color || '');
    if (bg) {
      const [r, g, b] = [0, 2, 4].map((i) => parseInt(bg[1].slice(i, i + 2), 16));
      app.colorScheme = Math.sqrt(0.299 * r * r + 0.587 * g * g + 0.114 * b * b) < 120 ? 'dark' : 'light';
    }
  }
  setTheme(parseJson(params.tgWebAppThemeParams || 'null', null));
  on('client:theme_changed', (data) => {
    if (data && data.theme_params) { setTheme(data.theme_params); emit('themeChanged'); }
  });

  // BackButton: web_app_setup_back_button {is_visible}; the client answers back_button_pressed
  const back = { isVisible: false };
  let backSent = null;
  function syncBack() {
    const state = JSON.stringify({ is_visible: back.isVisible });
    if (state !== backSent) { backSent = state; postEvent('web_app_setup_back_button', { is_visible: back.isVisible }); }
  }
  Object.assign(back, {
    show() { back.isVisible = true; syncBack(); return back; },
    hide() { back.isVisible = false; syncBack(); return back; },
    onClick(fn) { on('backButtonClicked', fn); return back; },
    offClick(fn) { off('backButtonClicked', fn); return back; },
  });
  on('client:back_button_pressed', () => emit('backButtonClicked'));

  // MainButton: web_app_setup_main_button {is_visible, is_active, is_progress_visible, text, color, text_color};
  // the client answers main_button_pressed
  const main = { text: 'Continue', isVisible: false, isActive: true, isProgressVisible: false, color: '', textColor: '' };
  let mainSent = null;
  function syncMain() {
    const p = main.isVisible ? {
      is_visible: true, is_active: main.isActive, is_progress_visible: main.isProgressVisible, text: main.text,
      color: main.color || app.themeParams.button_color || '#2481cc',
      text_color: main.textColor || app.themeParams.button_text_color || '#ffffff',
    } : { is_visible: false };
    const state = JSON.stringify(p);
    if (state !== mainSent) { mainSent = state; postEvent('web_app_setup_main_button', p); }
  }
  Object.assign(main, {
    setText(text) { main.text = String(text).trim().slice(0, 64); syncMain(); return main; },
    setParams(p) {
      if (p.text !== undefined) main.text = String(p.text).trim().slice(0, 64);
      if (p.color !== undefined) main.color = p.color;
      if (p.text_color !== undefined) main.textColor = p.text_color;
      if (p.is_visible !== undefined) main.isVisible = !!p.is_visible;
      if (p.is_active !== undefined) main.isActive = !!p.is_active;
      syncMain();
      return main;
    },
    show() { return main.setParams({ is_visible: true }); },
    hide() { return main.setParams({ is_visible: false }); },
    enable() { return main.setParams({ is_active: true }); },
    disable() { return main.setParams({ is_active: false }); },
    showProgress() { main.isProgressVisible = true; syncMain(); return main; },
    hideProgress() { main.isProgressVisible = false; syncMain(); return main; },
    onClick(fn) { on('mainButtonClicked', fn); return main; },
    offClick(fn) { off('mainButtonClicked', fn); return main; },
  });
  on('client:main_button_pressed', () => { if (main.isActive) emit('mainButtonClicked'); });

  // openInvoice(url, callback): web_app_open_invoice {slug} for https://t.me/$slug or https://t.me/invoice/slug;
  // the client answers invoice_closed {slug, status: paid | cancelled | failed | pending}
  const invoices = {};
  app.openInvoice = (url, callback) => {
    const a = new URL(url, w.location.href);
    const match = /^\/(\$|invoice\/)([A-Za-z0-9\-_=]+)$/.exec(a.pathname);
    if (!/^https?:$/.test(a.protocol) || a.hostname !== 't.me' || !match) throw new Error('WebAppInvoiceUrlInvalid');
    const slug = match[2];
    if (invoices[slug]) throw new Error('WebAppInvoiceOpened');
    invoices[slug] = { url, callback };
    postEvent('web_app_open_invoice', { slug });
  };
  on('client:invoice_closed', (data) => {
    const opened = data && invoices[data.slug];
    if (!opened) return;
    delete invoices[data.slug];
    if (opened.callback) opened.callback(data.status);
    emit('invoiceClosed', { url: opened.url, status: data.status });
  });

  app.BackButton = back;
  app.MainButton = main;
  w.Telegram = w.Telegram || {};
  w.Telegram.WebView = w.Telegram.WebView || { initParams: params, isIframe, postEvent, receiveEvent };
  w.Telegram.WebApp = app;
  postEvent('web_app_request_theme');
}

if (!(w.Telegram && w.Telegram.WebApp)) install();
