/**
 * Stop strings over streamed text. Text that could be the start of a stop
 * string is held back until the next delta decides; a stop string split
 * across tokens is found; the stop string and anything after it are never
 * emitted.
 */
export class StopMatcher {
  private held = '';
  private readonly stops: string[];
  stopped = false;
  /** The stop string that matched, once stopped. */
  matched?: string;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Adds a delta; returns the text that is now safe to emit. */
  push(delta: string): string {
    if (this.stopped) return '';
    const buf = this.held + delta;
    let at = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        this.matched = s;
      }
    }
    if (at >= 0) {
      this.stopped = true;
      this.held = '';
      return buf.slice(0, at);
    }
    const keep = this.heldSuffix(buf);
    this.held = buf.slice(buf.length - keep);
    return buf.slice(0, buf.length - keep);
  }

  /** Text held back at the end of generation (no stop string followed). */
  flush(): string {
    const out = this.stopped ? '' : this.held;
    this.held = '';
    return out;
  }

  /** Length of the longest suffix of buf that is a proper prefix of a stop string. */
  private heldSuffix(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > best; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
