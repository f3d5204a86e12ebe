// The shop page: one front-end for two hosts, Telegram's Mini App (`<html data-host="telegram">`) and WeChat's H5
// shop (`data-host="wechat"`). Screens on a small stack: the catalogue, a product (a top-up's account field), a
// risk question, an order.
// Telegram's BackButton and MainButton drive it inside Telegram; WeChat gets in-page buttons instead.
// Words come from /app/api/me (`strings`, the buyer's language); before that, from the page's boot strings.
import './tg.js'; // first: installs window.Telegram.WebApp when the client (or a test) has not
import { ApiError, makeApi } from './api.js';
import { fill, h, money } from './dom.js';

const host = document.documentElement.dataset.host === 'wechat' ? 'wechat' : 'telegram';
const tg = host === 'telegram' ? window.Telegram && window.Telegram.WebApp : null;
const api = makeApi(host);
const root = document.getElementById('app');
const POLL_MS = 1000;
const POLL_LIMIT = 180; // polls (about 3 minutes) before the page says it is slow; the chat still gets the codes

let strings = {};
let me = { language: 'en', currency: 'XTR' };
let categories = [];
const stack = []; // [{screen, args}]
let drawing = 0; // bumps on every draw: a screen still loading after the buyer moved on draws nothing
let mainAction = null;

const t = (key, params) => fill(strings[key] || key, params);

// -- boot ------------------------------------------------------------------------------------------------------
function bootStrings() {
  const boot = JSON.parse(document.getElementById('boot-strings').textContent);
  const user = tg && tg.initDataUnsafe && tg.initDataUnsafe.user;
  const wanted = ((user && user.language_code) || navigator.language || '').toLowerCase().slice(0, 2);
  const lang = Object.keys(boot.strings).find((l) => l.toLowerCase().startsWith(wanted)) || boot.default;
  return boot.strings[lang] || {};
}

async function start() {
  strings = bootStrings();
  if (tg) {
    applyTheme();
    tg.onEvent('themeChanged', applyTheme);
    tg.BackButton.onClick(back);
    tg.MainButton.onClick(() => mainAction && mainAction());
    tg.ready();
    tg.expand();
  }
  try {
    me = await api('GET', '/me');
  } catch (e) {
    return fatal(e);
  }
  strings = { ...strings, ...me.strings };
  document.documentElement.lang = (me.language || 'en').replace('_', '-');
  document.title = me.shop || '';
  go('catalog', { category: null, q: '' });
}

function applyTheme() {
  const style = document.documentElement.style;
  for (const [key, value] of Object.entries(tg.themeParams || {})) {
    if (/^#[0-9a-f]{3,8}$/i.test(value)) style.setProperty('--tg-theme-' + key.replace(/_/g, '-'), value);
  }
  document.documentElement.dataset.scheme = tg.colorScheme || 'light';
}

function fatal(error) {
  setMain(null);
  if (tg) tg.BackButton.hide();
  const unauthorized = error.status === 401;
  const text = unauthorized ? t(host === 'wechat' ? 'webapp.boot.unauthorized_wechat' : 'webapp.boot.unauthorized')
    : error.status === 0 ? t('webapp.boot.offline') : error.message || t('webapp.error');
  root.replaceChildren(h('div', { class: 'notice bad', role: 'alert', 'data-state': unauthorized ? 'unauthorized'
    : 'error' }, text), unauthorized ? null : h('button', { class: 'secondary', type: 'button',
    onclick: () => window.location.reload() }, t('webapp.boot.retry')));
  root.removeAttribute('aria-busy');
}

// -- screens on a stack ----------------------------------------------------------------------------------------
function go(screen, args) { stack.push({ screen, args }); draw(); }
function replace(screen, args) { stack.pop(); go(screen, args); }
function back() { if (stack.length > 1) { stack.pop(); draw(); } }

function draw(notice) {
  const token = ++drawing;
  const { screen, args } = stack[stack.length - 1];
  setMain(null);
  if (tg) {
    if (stack.length > 1) tg.BackButton.show(); else tg.BackButton.hide();
  }
  root.setAttribute('aria-busy', 'true');
  const live = () => token === drawing;
  SCREENS[screen](args, live, notice).catch((e) => {
    if (!live()) return;
    if (e instanceof ApiError && (e.status === 401 || e.status === 0)) fatal(e);
    else show([topbar(), refusal(e)]);
  });
}

function show(children) {
  root.replaceChildren(...children.flat().filter(Boolean));
  root.removeAttribute('aria-busy');
}

function topbar(title) {
  const backButton = host === 'wechat' && stack.length > 1
    ? h('button', { class: 'back', type: 'button', onclick: back }, '‹ ' + t('webapp.back')) : null;
  if (!backButton && !title) return null;
  return h('header', { class: 'topbar' }, backButton, title ? h('h1', {}, title) : null);
}

function refusal(error) {
  return h('p', { class: 'notice bad', role: 'alert' }, (error && error.message) || t('webapp.error'));
}

function note(text, bad) {
  return text ? h('p', { class: bad ? 'notice bad' : 'notice', role: bad ? 'alert' : 'status' }, text) : null;
}

// The buy button: Telegram's MainButton, or an in-page button on WeChat. `action` null hides it.
function setMain(text, action, active = true) {
  mainAction = action;
  if (!tg) return;
  if (!action) { tg.MainButton.hide(); return; }
  tg.MainButton.setText(text);
  if (active) tg.MainButton.enable(); else tg.MainButton.disable();
  tg.MainButton.show();
}

// -- the catalogue -------------------------------------------------------------------------------------------
function picture(product, alt) {
  if (product.image) return h('img', { class: 'pic', src: product.image, alt, loading: 'lazy' });
  return h('div', { class: 'pic ph', 'aria-hidden': 'true' }, (product.title || '?').trim().charAt(0).toUpperCase());
}

// A flash sale's line: units left and a countdown to its end, or to its start (the server decides the price).
function flashLine(flash, live) {
  const line = h('p', { class: 'flash', id: 'flash' });
  const clock = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    const pad = (n) => String(n).padStart(2, '0');
    const hms = `${pad(Math.floor(s / 3600) % 24)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
    return s >= 86400 ? `${Math.floor(s / 86400)}d ${hms}` : hms;
  };
  const tick = () => {
    if (flash.state === 'sold_out') line.textContent = t('webapp.flash.sold_out');
    else if (flash.state === 'upcoming') {
      line.textContent = t('webapp.flash.upcoming', { price: flash.price.text,
        countdown: clock(Date.parse(flash.starts_at) - Date.now()) });
    } else {
      line.textContent = t('webapp.flash.live', { left: flash.left,
        countdown: clock(Date.parse(flash.ends_at) - Date.now()) });
    }
  };
  tick();
  const timer = setInterval(() => (live() ? tick() : clearInterval(timer)), 1000);
  return line;
}

function stock(product) {
  if (product.buyable === false) return h('span', { class: 'stock' }, t('webapp.not_here'));
  if (!product.in_stock) return h('span', { class: 'stock low' }, t('webapp.stock.sold_out'));
  if (product.low && product.available !== null) {
    return h('span', { class: 'stock low' }, t('webapp.stock.left', { n: product.available }));
  }
  return h('span', { class: 'stock' }, t('webapp.stock.in'));
}

const SCREENS = {
  async catalog(args, live, notice) {
    const q = args.q.trim();
    const data = q ? await api('GET', '/search?q=' + encodeURIComponent(q))
      : await api('GET', '/catalog' + (args.category ? '?category=' + encodeURIComponent(args.category) : ''));
    if (!live()) return;
    if (data.categories) categories = data.categories;
    const input = h('input', { type: 'search', id: 'q', name: 'q', value: args.q, autocomplete: 'off',
      enterkeyhint: 'search', placeholder: t('webapp.search.submit') });
    const form = h('form', { class: 'search', role: 'search', onsubmit: (e) => {
      e.preventDefault();
      args.q = input.value;
      args.category = null;
      draw();
    } }, h('label', { for: 'q', class: 'visually-hidden' }, t('webapp.search.label')), input,
    h('button', { type: 'submit' }, t('webapp.search.submit')));
    const chip = (key, name) => h('button', { class: 'chip', type: 'button',
      'aria-pressed': String(!q && args.category === key), onclick: () => {
        args.category = key;
        args.q = '';
        draw();
      } }, name);
    const chips = h('nav', { class: 'chips', 'aria-label': t('webapp.categories') },
      chip(null, t('webapp.category.all')),
      categories.filter((c) => c.key && c.name).map((c) => chip(c.key, c.name))); // uncategorised: under All
    const cards = data.products.map((p) => h('li', {}, h('button', { class: 'card', type: 'button',
      'data-product': p.id, onclick: () => go('product', { id: p.id, qty: p.min_qty }) },
    picture(p, ''), h('span', { class: 'info' }, h('span', { class: 'title' }, p.title),
      p.price ? h('span', { class: 'price' }, p.price.text) : null, stock(p)))));
    const empty = q ? t('webapp.search.none', { q }) : t('webapp.empty');
    show([
      h('header', { class: 'topbar' }, h('h1', {}, me.shop || '')), note(notice), form, chips,
      q ? h('h2', {}, t('webapp.search.results', { q })) : h('h2', { class: 'visually-hidden' }, t('webapp.products')),
      cards.length ? h('ul', { class: 'grid', 'aria-label': t('webapp.products') }, cards)
        : h('p', { class: 'hint' }, empty),
    ]);
  },

  async product(args, live, notice) {
    const { product: p } = await api('GET', '/products/' + args.id);
    if (!live()) return;
    const most = p.low && p.available !== null ? Math.min(p.max_qty, p.available) : p.max_qty;
    args.qty = Math.max(p.min_qty, Math.min(args.qty || p.min_qty, most));
    const total = () => money(p.price.amount * args.qty, p.price.currency, me.language);
    const out = h('output', { id: 'qty', 'aria-live': 'polite' }, String(args.qty));
    const sum = h('p', { class: 'price', id: 'total' }, t('webapp.total', { total: total() }));
    const less = h('button', { type: 'button', 'aria-label': t('webapp.qty.less'), onclick: () => step(-1) }, '−');
    const more = h('button', { type: 'button', 'aria-label': t('webapp.qty.more'), onclick: () => step(1) }, '+');
    const buyable = p.in_stock && p.price && p.buyable !== false;
    const account = p.account ? accountField(p.account, args) : null; // a top-up: whose account to recharge
    const coupon = buyable && !account ? couponField(args) : null; // a coupon code: the server prices the order
    const purchase = () => buy(p, args.qty, null, account ? account.value() : undefined, coupon && coupon.value());
    const buyButton = host === 'wechat' && buyable ? h('button', { class: 'primary', type: 'button', id: 'buy',
      onclick: purchase }) : null;
    const refresh = () => {
      out.textContent = String(args.qty);
      sum.textContent = t('webapp.total', { total: total() });
      less.disabled = args.qty <= p.min_qty;
      more.disabled = args.qty >= most;
      const label = t('webapp.buy', { total: total() });
      const ready = !account || account.filled(); // Buy waits for the account
      if (buyButton) {
        buyButton.textContent = label;
        buyButton.disabled = !ready;
      }
      if (buyable) setMain(label, purchase, ready);
    };
    if (account) account.onchange = refresh;
    const step = (by) => { args.qty = Math.max(p.min_qty, Math.min(args.qty + by, most)); refresh(); };
    refresh();
    show([
      topbar(), note(notice && notice.text, notice && notice.bad),
      h('article', { class: 'product' }, picture(p, p.title), h('h1', {}, p.title),
        p.price ? h('p', { class: 'price' }, t('webapp.price.each', { price: p.price.text })) : null,
        p.flash ? flashLine(p.flash, live) : null, stock(p),
        p.description ? h('p', { class: 'description' }, p.description) : null,
        buyable && account ? [account.element, sum, buyButton] : null,
        buyable && !account ? [
          h('div', { class: 'stepper', role: 'group', 'aria-labelledby': 'qty-label' },
            h('span', { id: 'qty-label' }, t('webapp.qty.label')), less, out, more),
          h('p', { class: 'hint' }, t('webapp.qty.range', { min: p.min_qty, max: most })), coupon.element, sum,
          buyButton,
        ] : null),
    ]);
    if (account && args.accountError) account.focus(); // the server refused it: the buyer corrects it here
  },

  // A risk question (403 challenge_required): the server's words, an answer field and its choices if it has any
  async challenge(args) {
    const { token, question, options } = args.challenge;
    const answer = (text) => buy(args.product, args.qty, { token, answer: text.trim() }, args.account, args.coupon);
    const input = h('input', { id: 'answer', name: 'answer', autocomplete: 'off', required: true, maxlength: 16 });
    const choices = (options || []).map((o) => h('button', { class: 'chip', type: 'button',
      onclick: () => answer(o) }, o));
    const form = h('form', { onsubmit: (e) => { e.preventDefault(); answer(input.value); } },
      h('p', { id: 'question' }, args.message || question),
      choices.length ? h('div', { class: 'chips', role: 'group', 'aria-labelledby': 'question' }, choices) : null,
      h('div', { class: 'field' }, h('label', { for: 'answer' }, t('webapp.challenge.answer')), input),
      h('button', { class: 'primary', type: 'submit' }, t('webapp.challenge.submit')));
    show([topbar(t('webapp.challenge.title')), form]);
    input.focus();
  },

  async order(args, live) {
    let order = args.order;
    for (let polls = 0; ; polls++) {
      drawOrder(order, polls >= POLL_LIMIT);
      if (!['held', 'pending'].includes(order.status) || polls >= POLL_LIMIT) return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (!live()) return;
      try {
        order = (await api('GET', '/orders/' + order.id)).order;
      } catch (e) {
        if (e.status === 401) throw e; // anything else: try again at the next poll
      }
      if (!live()) return;
    }
  },
};

// A top-up's account field (`spec`: the product's `account`): labelled, the chat's prompt as its hint, the keyboard
// that fits, what the buyer typed kept in `args.account`, and a refusal (the server's, or the page's own early check
// against the product's pattern) under it. The server decides: the early check never blocks Buy.
function accountField(spec, args) {
  const error = h('p', { class: 'notice bad', id: 'account-error', role: 'alert', hidden: !args.accountError },
    args.accountError || '');
  const input = h('input', { id: 'account', name: 'account', autocomplete: 'off', autocapitalize: 'off',
    spellcheck: 'false', inputmode: spec.inputmode || 'text', enterkeyhint: 'done', maxlength: spec.max_length,
    required: true, 'aria-describedby': 'account-hint account-error', 'aria-invalid': args.accountError ? 'true'
      : null, value: args.account || '' });
  const field = { value: () => input.value.trim(), filled: () => input.value.trim() !== '', onchange: null,
    focus: () => input.focus() };
  const say = (text) => {
    error.textContent = text || '';
    error.hidden = !text;
    if (text) input.setAttribute('aria-invalid', 'true'); else input.removeAttribute('aria-invalid');
  };
  input.addEventListener('input', () => {
    args.account = input.value;
    args.accountError = undefined;
    say(null); // a refusal was about what was there before
    if (field.onchange) field.onchange();
  });
  input.addEventListener('change', () => {
    if (field.filled() && !fits(spec.pattern, field.value())) say(t('webapp.account.invalid'));
  });
  field.element = [h('div', { class: 'field' }, h('label', { for: 'account' }, t('webapp.account.label')), input,
    h('p', { class: 'hint', id: 'account-hint' }, spec.hint), error),
  h('p', { class: 'hint' }, t('webapp.account.check'))];
  return field;
}

// An optional coupon code (core/coupons.py): what the buyer typed stays in `args.coupon`; the order's price and a
// refusal (shown above the product) come from the server.
function couponField(args) {
  const input = h('input', { id: 'coupon', name: 'coupon', autocomplete: 'off', autocapitalize: 'characters',
    spellcheck: 'false', maxlength: 64, value: args.coupon || '', oninput: () => { args.coupon = input.value; } });
  return { element: h('div', { class: 'field' }, h('label', { for: 'coupon' }, t('webapp.coupon.label')), input),
    value: () => input.value.trim() || undefined };
}

// The page's early check of an account against the product's pattern, as the server reads it (also without the
// spaces and dashes a buyer types in a phone number). A pattern this browser cannot read passes: the server decides.
function fits(pattern, text) {
  if (!pattern) return true;
  let re;
  try {
    re = new RegExp('^(?:' + pattern + ')$', 'u');
  } catch (e) {
    return true;
  }
  return re.test(text) || re.test(text.replace(/[\s-]/g, ''));
}

// -- an order: paying, waiting, delivered -----------------------------------------------------------------------
function drawOrder(order, slow) {
  const heading = [topbar(t('webapp.order', { id: order.id })), h('p', {}, order.title + ' × ' + order.qty + ' · '
    + order.amount.text), order.account ? h('p', { id: 'order-account' }, t('webapp.account.shown',
    { account: order.account })) : null];
  if (order.account && ['pending', 'delivered'].includes(order.status)) { // a top-up: no codes, the account
    const done = order.status === 'delivered';
    show([heading, h('p', { class: 'notice', role: 'status', 'data-state': order.status },
      t(done ? 'webapp.topup.done' : 'webapp.topup.pending', { account: order.account })),
    done || slow ? null : h('div', { class: 'loading' }), done ? continueButton() : null]);
  } else if (order.status === 'delivered') {
    const codes = h('div', { id: 'codes' });
    const reveal = h('button', { class: 'secondary', type: 'button', id: 'reveal', onclick: async () => {
      reveal.disabled = true;
      try {
        const data = await api('POST', '/orders/' + order.id + '/reveal');
        codes.replaceChildren(h('h2', {}, t('webapp.codes')), h('ul', { class: 'codes' },
          data.codes.map((c) => h('li', {}, h('code', {}, c), copyButton(c)))));
        reveal.hidden = true;
      } catch (e) {
        codes.replaceChildren(refusal(e));
        reveal.disabled = false;
      }
    } }, t('webapp.reveal'));
    show([heading, h('p', { class: 'notice', role: 'status', 'data-state': 'delivered' }, t('webapp.delivered')),
      reveal, codes, continueButton()]);
  } else if (order.status === 'held' || order.status === 'pending') {
    const waiting = slow ? t('webapp.slow') : order.status === 'held' ? t('webapp.paying') : t('webapp.pending');
    show([heading, h('p', { class: 'notice', role: 'status', 'data-state': order.status }, waiting),
      slow ? null : h('div', { class: 'loading' })]);
  } else {
    const text = order.status === 'expired' || order.status === 'cancelled' ? t('webapp.expired')
      : order.status === 'refunding' || order.status === 'refunded' ? t('webapp.refunded') : t('webapp.error');
    show([heading, note(text, true), continueButton()]);
  }
}

function copyButton(text) {
  const button = h('button', { class: 'secondary', type: 'button', 'aria-label': t('webapp.copy') + ' ' + text,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(text);
      } catch (e) { // no clipboard permission (an older webview): select it, so the buyer can copy it by hand
        const range = document.createRange();
        range.selectNodeContents(button.previousElementSibling);
        window.getSelection().removeAllRanges();
        window.getSelection().addRange(range);
        return;
      }
      button.textContent = t('webapp.copied');
    } }, t('webapp.copy'));
  return button;
}

function continueButton() {
  return h('button', { class: 'secondary', type: 'button', onclick: () => {
    stack.length = 1;
    draw();
  } }, t('webapp.continue'));
}

// -- buying ------------------------------------------------------------------------------------------------------
let buying = false;

// `account`: a top-up's account as typed (the server checks it against the product's pattern)
async function buy(product, qty, challenge, account, coupon) {
  if (buying) return;
  buying = true;
  if (tg) tg.MainButton.showProgress();
  const again = { account, coupon }; // back on the product: what the buyer typed stays in the field
  try {
    const body = { product_id: product.id, qty };
    if (challenge) body.challenge = challenge;
    if (account !== undefined) body.account = account;
    if (coupon) body.coupon = coupon;
    const { order, pay } = await api('POST', '/orders', body);
    if (stack[stack.length - 1].screen === 'challenge') stack.pop();
    await payFor(order, pay, product, qty, again);
  } catch (e) {
    if (e.code === 'challenge_required' && e.error.challenge) {
      const args = { product, qty, account, coupon, challenge: e.error.challenge, message: e.message };
      if (stack[stack.length - 1].screen === 'challenge') replace('challenge', args); else go('challenge', args);
    } else if (e.status === 401) {
      fatal(e);
    } else if (e.code === 'bad_account') { // the refusal goes under the field it is about
      backToProduct(product, qty, null, { account, accountError: e.message || t('webapp.account.invalid') });
    } else {
      backToProduct(product, qty, e.message || t('webapp.error'), again);
    }
  } finally {
    buying = false;
    if (tg) tg.MainButton.hideProgress();
  }
}

// `more`: the product screen's arguments to set (a top-up's account as typed, the refusal under its field)
function backToProduct(product, qty, text, more) {
  while (stack.length > 1 && stack[stack.length - 1].screen !== 'product') stack.pop();
  if (stack[stack.length - 1].screen !== 'product') stack.push({ screen: 'product', args: { id: product.id, qty } });
  Object.assign(stack[stack.length - 1].args, { accountError: undefined }, more || {});
  draw(text ? { text, bad: true } : undefined);
}

// The buyer closed the payment without paying: free the held codes for others, then back to the product.
function unpaid(order, product, qty, text, more) {
  api('POST', '/orders/' + order.id + '/cancel').catch(() => {});
  backToProduct(product, qty, text, more);
}

async function payFor(order, pay, product, qty, more) {
  if (pay.kind === 'telegram_invoice') {
    if (!tg || !tg.openInvoice) throw new ApiError(500, null);
    tg.openInvoice(pay.url, (status) => {
      if (status === 'paid') go('order', { order });
      else if (status === 'pending') go('order', { order });
      else unpaid(order, product, qty, t(status === 'cancelled' ? 'webapp.cancelled' : 'webapp.failed'), more);
    });
  } else if (pay.kind === 'wechat_jsapi') {
    const bridge = await weixinBridge();
    if (!bridge) return backToProduct(product, qty, t('webapp.wechat_only'), more);
    bridge.invoke('getBrandWCPayRequest', pay.params, (res) => {
      const result = (res && res.err_msg) || '';
      if (result === 'get_brand_wcpay_request:ok') go('order', { order });
      else unpaid(order, product, qty, t(result.endsWith(':cancel') ? 'webapp.cancelled' : 'webapp.failed'), more);
    });
  } else {
    throw new ApiError(500, null);
  }
}

// WeChat's in-app bridge: there already, or announced by the WeixinJSBridgeReady event (null when not in WeChat)
function weixinBridge() {
  if (window.WeixinJSBridge) return Promise.resolve(window.WeixinJSBridge);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(window.WeixinJSBridge || null), 3000);
    document.addEventListener('WeixinJSBridgeReady', () => {
      clearTimeout(timer);
      resolve(window.WeixinJSBridge);
    }, { once: true });
  });
}

start();
