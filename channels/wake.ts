// A reusable wake-up signal: loops sleep on it and are woken by new work or by a deadline.
export class Wake {
  private waiters: Array<() => void> = [];

  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  /** Resolves on the next notify() or after `ms` (never, when ms is undefined). */
  wait(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      this.waiters.push(done);
      if (ms !== undefined)
        timer = setTimeout(
          () => {
            this.waiters = this.waiters.filter((w) => w !== done);
            resolve();
          },
          Math.max(0, ms),
        );
    });
  }
}
