/**
 * A FIFO lock: calls on one engine run one after another, in the order they
 * asked, so none sees another's KV cache half-updated.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private waiting = 0;

  /** Resolves, in call order, with a release function once every earlier holder released. */
  acquire(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const prev = this.tail;
    this.tail = prev.then(() => mine);
    this.waiting++;
    return prev.then(() => {
      this.waiting--;
      let done = false;
      return () => {
        if (!done) {
          done = true;
          release();
        }
      };
    });
  }

  /** Holders and waiters not yet granted the lock. */
  get pending(): number {
    return this.waiting;
  }

  /** Runs `fn` under the lock. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
