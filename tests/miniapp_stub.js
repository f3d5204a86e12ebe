// A test's window.Telegram.WebApp (Playwright add_init_script, before the page's own scripts): what a Telegram
// client gives a Mini App, recording what the page asks of it. The test replaces __INIT__ with
// {"initData": "<signed as Telegram signs it>", "user": {...}, "themeParams": {...}} and drives it through
// window.__tg: pressMain(), pressBack(), closeInvoice(status), changeTheme(params); invoices, events and the two
// buttons' state are read back from there.
(() => {
  const init = __INIT__;
  const handlers = {};
  const fire = (type, ...args) => (handlers[type] || []).slice().forEach((fn) => fn(...args));
  const rec = { invoices: [], events: [], main: { visible: false, active: true, text: '' }, back: { visible: false } };
  const log = (name, data) => rec.events.push([name, data === undefined ? null : data]);
  const main = {
    get text() { return rec.main.text; }, get isVisible() { return rec.main.visible; },
    get isActive() { return rec.main.active; },
    setText(text) { rec.main.text = text; log('main.text', text); return main; },
    show() { rec.main.visible = true; log('main.show'); return main; },
    hide() { rec.main.visible = false; log('main.hide'); return main; },
    enable() { rec.main.active = true; return main; },
    disable() { rec.main.active = false; return main; },
    showProgress() { log('main.progress', true); return main; },
    hideProgress() { log('main.progress', false); return main; },
    setParams(p) { if ('text' in p) main.setText(p.text); if (p.is_visible) main.show(); return main; },
    onClick(fn) { (handlers.mainButtonClicked ||= []).push(fn); return main; },
    offClick(fn) { handlers.mainButtonClicked = (handlers.mainButtonClicked || []).filter((f) => f !== fn); return main; },
  };
  const back = {
    get isVisible() { return rec.back.visible; },
    show() { rec.back.visible = true; log('back.show'); return back; },
    hide() { rec.back.visible = false; log('back.hide'); return back; },
    onClick(fn) { (handlers.backButtonClicked ||= []).push(fn); return back; },
    offClick(fn) { handlers.backButtonClicked = (handlers.backButtonClicked || []).filter((f) => f !== fn); return back; },
  };
  let pending = null;
  const app = {
    initData: init.initData,
    initDataUnsafe: { user: init.user },
    version: '8.0', platform: 'test',
    themeParams: init.themeParams || {}, colorScheme: init.colorScheme || 'light',
    ready() { log('ready'); }, expand() { log('expand'); },
    onEvent(type, fn) { (handlers[type] ||= []).push(fn); },
    offEvent(type, fn) { handlers[type] = (handlers[type] || []).filter((f) => f !== fn); },
    openInvoice(url, callback) { rec.invoices.push(url); pending = { url, callback }; },
    MainButton: main, BackButton: back,
  };
  window.Telegram = { WebApp: app };
  window.__tg = Object.assign(rec, {
    pressMain() { if (rec.main.visible && rec.main.active) fire('mainButtonClicked'); },
    pressBack() { if (rec.back.visible) fire('backButtonClicked'); },
    closeInvoice(status) {
      const p = pending; pending = null;
      if (p.callback) p.callback(status);
      fire('invoiceClosed', { url: p.url, status });
    },
    changeTheme(params, scheme) { app.themeParams = params; app.colorScheme = scheme; fire('themeChanged'); },
  });
})();
