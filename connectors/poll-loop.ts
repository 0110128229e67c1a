// What the polling sources (remote SFTP, IMAP) share: a wait that stop() can cut short, and the
// reconnection delay after consecutive failures (doubling from min to max, ±20 % jitter so that
// many pollers of one server do not reconnect in step).
export class Sleeper {
  private wakeUp: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => wake(), ms);
      const wake = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        resolve();
      };
      this.wakeUp = wake;
    });
  }

  /** Ends the current wait now (stop). */
  wake(): void {
    this.wakeUp?.();
  }
}

export function reconnectDelay(failures: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** (failures - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** The work a source has begun and must let settle before it stops (a journal write, an answer). */
export class InFlight {
  private readonly work = new Set<Promise<unknown>>();

  track<T>(work: Promise<T>): Promise<T> {
    this.work.add(work);
    const forget = (): void => void this.work.delete(work);
    work.then(forget, forget);
    return work;
  }

  settled(): Promise<unknown> {
    return Promise.allSettled([...this.work]);
  }
}
