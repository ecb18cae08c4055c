// The pobox demo page: two panes, each a user with one device ("web") talking the
// WebSocket protocol directly (docs/protocol.md). Plain browser JavaScript, no build.
//
// Each pane: sign in (a token from the demo-only /demo/token), connect, say hello, show
// what arrives (the backlog first, then live), ack each message once shown, send to
// the other pane's user with a delivery receipt, and go offline / online at will.
// Seqs at or below what was already shown are dropped (at-least-once across
// reconnects, shown once).

const slow = document.getElementById('slow');
const RECEIPT_SENDER = 'pobox';
const panes = {};

function newId() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function') return `demo-${crypto.randomUUID()}`;
  return `demo-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

class Pane {
  constructor(side, defaultUser, otherSide) {
    this.side = side;
    this.otherSide = otherSide;
    this.root = document.getElementById(side);
    this.root.appendChild(document.getElementById('pane-template').content.cloneNode(true));
    this.el = (cls) => this.root.querySelector(`.${cls}`);
    this.el('user').value = defaultUser;
    this.el('user').id = `${side}-user`;
    this.el('signin-btn').id = `${side}-signin`;
    this.el('toggle').id = `${side}-toggle`;
    this.el('status').id = `${side}-status`;
    this.el('pending').id = `${side}-pending`;
    this.el('messages').id = `${side}-messages`;
    this.el('to').id = `${side}-to`;
    this.el('text').id = `${side}-text`;
    this.el('send').id = `${side}-send`;

    this.user = undefined;
    this.token = undefined;
    this.ws = undefined;
    this.online = false;
    this.epoch = undefined;
    this.lastShown = 0; // highest seq shown (and acked) in this epoch
    this.queue = []; // message frames waiting to be shown
    this.showing = false;
    this.caughtUp = false;
    this.sent = new Map(); // message id -> <li>

    this.el('signin-btn').addEventListener('click', () => this.signIn().catch((e) => this.note(`sign-in failed: ${e.message}`)));
    this.el('user').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') this.el('signin-btn').click();
    });
    this.el('toggle').addEventListener('click', () => (this.online ? this.goOffline() : this.connect()));
    this.el('compose').addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    setInterval(() => this.refreshPending(), 400);
  }

  get other() {
    return panes[this.otherSide];
  }

  async signIn() {
    const user = this.el('user').value.trim();
    const res = await fetch('/demo/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user, device: 'web' }) });
    const json = await res.json();
    if (!res.ok) throw new Error(json.error ? json.error.message : `HTTP ${res.status}`);
    if (this.ws) this.goOffline();
    this.user = json.user;
    this.token = json.token;
    this.epoch = undefined;
    this.lastShown = 0;
    this.queue = [];
    this.el('messages').replaceChildren();
    this.el('user').disabled = true;
    this.el('signin-btn').disabled = true;
    this.el('toggle').disabled = false;
    if (!this.el('to').value) this.el('to').value = this.other.el('user').value.trim();
    this.connect();
  }

  setStatus(text, cls) {
    const s = this.el('status');
    s.textContent = text;
    s.className = `status ${cls}`;
    s.dataset.state = cls;
  }

  connect() {
    if (!this.token) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    this.caughtUp = false;
    this.setStatus('connecting', 'draining');
    ws.addEventListener('open', () => {
      const hello = { type: 'hello', protocol: 1 };
      if (this.epoch) {
        hello.epoch = this.epoch;
        hello.lastSeq = this.lastShown;
      }
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener('message', (ev) => this.onFrame(JSON.parse(ev.data)));
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.online = false;
      this.setStatus(ev.code === 1000 ? 'offline' : `offline (${ev.code})`, 'offline');
      this.el('toggle').textContent = 'Go online';
      this.el('send').disabled = true;
    });
  }

  goOffline() {
    const ws = this.ws;
    if (!ws) return;
    ws.close(1000, 'going offline');
    this.queue = []; // unacked messages come again on the next connect
  }

  onFrame(f) {
    switch (f.type) {
      case 'welcome':
        if (f.epochChanged || (this.epoch && this.epoch !== f.epoch)) this.lastShown = 0;
        this.epoch = f.epoch;
        this.online = true;
        this.setStatus('draining backlog', 'draining');
        this.el('toggle').textContent = 'Go offline';
        this.el('send').disabled = false;
        return;
      case 'message':
        this.queue.push({ frame: f, backlog: !this.caughtUp });
        this.pump();
        return;
      case 'caughtUp':
        this.caughtUp = true;
        this.queue.push({ marker: true });
        this.pump();
        return;
      case 'accepted': {
        const li = this.sent.get(f.id);
        if (li) li.querySelector('.tick').textContent = `stored #${f.seq}`;
        return;
      }
      case 'error':
        this.note(`${f.code}: ${f.message}`);
        return;
      default:
        return;
    }
  }

  /** Show queued messages one at a time (slowly when asked), acking each once shown. */
  pump() {
    if (this.showing) return;
    const item = this.queue.shift();
    if (!item) return;
    if (item.marker) {
      if (this.online) this.setStatus('online', 'online');
      this.pump();
      return;
    }
    const f = item.frame;
    if (f.seq <= this.lastShown) {
      this.ack(f.seq); // seen before a reconnect: ack again, show once
      this.pump();
      return;
    }
    this.showing = true;
    const delay = slow.checked && item.backlog ? 350 : 0;
    setTimeout(() => {
      this.showing = false;
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return; // went offline: it comes again
      this.lastShown = f.seq;
      this.show(f, item.backlog);
      this.ack(f.seq);
      this.pump();
    }, delay);
  }

  ack(seq) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'ack', upTo: seq }));
  }

  show(f, backlog) {
    if (f.from === RECEIPT_SENDER) {
      try {
        const r = JSON.parse(f.body);
        if (r.type === 'receipt') {
          const li = this.sent.get(r.id);
          if (li) {
            const tick = li.querySelector('.tick');
            tick.textContent = `delivered to ${r.to}/${r.device} ${time(r.ackedAt)}`;
            tick.classList.add('delivered');
          }
          return;
        }
      } catch {
        // not a receipt: show it as a message
      }
    }
    const li = document.createElement('li');
    li.className = `in${backlog ? ' backlog' : ''}`;
    li.dataset.seq = String(f.seq);
    li.dataset.from = f.from;
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = `#${f.seq} from ${f.from} · ${time(f.sentAt)}`;
    const body = document.createElement('span');
    body.className = 'body';
    body.textContent = f.body;
    li.append(meta, body);
    this.append(li);
  }

  send() {
    const to = this.el('to').value.trim();
    const input = this.el('text');
    const text = input.value;
    if (!text || !to || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const id = newId();
    this.ws.send(JSON.stringify({ type: 'send', id, to, body: text, receipt: true }));
    const li = document.createElement('li');
    li.className = 'mine';
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = `to ${to} · ${time(Date.now())}`;
    const body = document.createElement('span');
    body.className = 'body';
    body.textContent = text;
    const tick = document.createElement('span');
    tick.className = 'tick';
    tick.textContent = 'sending';
    li.append(meta, body, tick);
    this.sent.set(id, li);
    this.append(li);
    input.value = '';
    input.focus();
  }

  note(text) {
    const li = document.createElement('li');
    li.className = 'note';
    li.textContent = text;
    this.append(li);
  }

  append(li) {
    const list = this.el('messages');
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  async refreshPending() {
    // Before sign-in, show the backlog waiting for the user typed in the box.
    const user = this.user || this.el('user').value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/.test(user)) return;
    try {
      const res = await fetch(`/demo/pending/${encodeURIComponent(user)}`);
      if (!res.ok) return;
      const s = await res.json();
      const b = this.el('pending').querySelector('b');
      b.textContent = String(s.pending);
      this.el('pending').dataset.pending = String(s.pending);
    } catch {
      // the server may be restarting; try again on the next tick
    }
  }
}

panes.left = new Pane('left', 'alice', 'right');
panes.right = new Pane('right', 'bob', 'left');
