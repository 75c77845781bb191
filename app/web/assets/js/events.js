// The live stream (GET /api/v1/events) with a fresh single-use stream token per connection,
// reconnection with exponential backoff (+ jitter), and a "resync" after every reconnect so views
// refetch what they show (events sent while disconnected are not replayed by the server).
import { api } from "./api.js";

const TYPES = ["chip.status", "chip.qr", "message.status", "chip.health", "chip.deleted"];
const MAX_DELAY_MS = 10000;

export class LiveEvents {
  constructor() {
    this.listeners = new Map();
    this.source = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.everConnected = false;
    this.state = "offline";
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  emit(type, data) {
    for (const fn of [...(this.listeners.get(type) || [])]) {
      try {
        fn(data);
      } catch (error) {
        console.error(error);
      }
    }
  }

  setState(state) {
    this.state = state;
    this.emit("state", state);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    this.everConnected = false;
    this.setState("offline");
  }

  async connect() {
    if (this.stopped) return;
    this.setState(this.everConnected ? "reconnecting" : "connecting");
    let streamToken;
    try {
      streamToken = (await api("POST", "/auth/stream-token")).token;
    } catch {
      this.retry();
      return;
    }
    if (this.stopped) return;
    const source = new EventSource(`/api/v1/events?token=${encodeURIComponent(streamToken)}`);
    this.source = source;
    source.addEventListener("open", () => {
      const again = this.everConnected;
      this.attempt = 0;
      this.everConnected = true;
      this.setState("live");
      if (again) this.emit("resync", null);
    });
    source.addEventListener("error", () => {
      // The token is single-use: EventSource's own retry would reuse it, so close and start over.
      source.close();
      if (this.source === source) this.retry();
    });
    for (const type of TYPES) {
      source.addEventListener(type, (event) => {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        this.emit(type, data);
      });
    }
  }

  retry() {
    if (this.stopped) return;
    this.source = null;
    this.setState("reconnecting");
    const base = Math.min(MAX_DELAY_MS, 500 * 2 ** this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * (base / 2));
  }
}

export const live = new LiveEvents();
