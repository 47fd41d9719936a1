// The live notification socket (`/ws`, DESIGN §8): authenticate with the first message,
// resume after the last revision seen (no gaps after a reconnect), answer pings, and
// reconnect with backoff. The caller supplies the handlers.
//
// The server ends a socket whose token expired, was revoked (a password change) or was
// refused with `{"type":"error","code":"token_expired"|"token_revoked"|"unauthorized"}`
// and close code 1008. Reconnecting with the same token cannot help: the socket stops and
// `onAuthEnd(code, message, token)` decides (sign out, or go on with a newer token).

/** Error codes that end the session rather than the connection. */
const AUTH_CODES = new Set(['token_expired', 'token_revoked', 'unauthorized']);
/** RFC 6455 "policy violation": what the server closes with for those. */
const CLOSE_POLICY = 1008;

export class Live {
  /**
   * @param {() => string|null} token
   * @param {{onReady?, onNotification?, onResync?, onStatus?, onAuthEnd?}} handlers
   */
  constructor(token, handlers) {
    this.token = token;
    this.handlers = handlers;
    this.after = null; // last revision seen
    this.ws = null;
    this.stopped = true;
    this.attempts = 0;
    this.timer = null;
    this.connected = false;
  }

  /** Start (or restart) after revision `after` (null: from now). */
  start(after = null) {
    this.stop();
    this.stopped = false;
    this.after = after;
    this.attempts = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onerror = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        /* already closed */
      }
    }
    this.setStatus(false);
  }

  setStatus(up) {
    this.connected = up;
    this.handlers.onStatus?.(up);
  }

  connect() {
    const token = this.token();
    if (!token || this.stopped) return;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    let authError = null; // {code, message} the server sent before closing
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'auth', token }));
      if (this.after !== null) ws.send(JSON.stringify({ type: 'resume', after: this.after }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      switch (msg.type) {
        case 'ready':
          this.attempts = 0;
          if (this.after === null || msg.revision > this.after) this.after = msg.revision;
          this.setStatus(true);
          this.handlers.onReady?.(msg.revision);
          break;
        case 'notification':
          if (this.after === null || msg.revision > this.after) this.after = msg.revision;
          this.handlers.onNotification?.(msg.notification, msg.revision);
          break;
        case 'resync_required':
          this.handlers.onResync?.();
          break;
        case 'ping':
          ws.send(JSON.stringify({ type: 'pong' }));
          break;
        case 'error':
          // The close (1008) follows; remember why.
          if (AUTH_CODES.has(msg.code)) authError = { code: msg.code, message: msg.message || '' };
          break;
        default:
          break;
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (authError || ev.code === CLOSE_POLICY) {
        const why = authError || { code: 'unauthorized', message: ev.reason || '' };
        this.stop();
        this.handlers.onAuthEnd?.(why.code, why.message, token);
        return;
      }
      this.setStatus(false);
      this.retry();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  retry() {
    if (this.stopped) return;
    const delay = Math.min(15000, 500 * 2 ** Math.min(this.attempts++, 5)) + Math.random() * 400;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
