// Per-thread CPU of a process, from Linux /proc. The machine is shared, so wall time counts other
// processes' turns; what each thread of ours spent is the figure a loaded machine changes least. The
// threads that matter name themselves (nameThisThread: `onco-writer`, `onco-steps`).
import fs from 'node:fs';

/** Each thread's name and CPU seconds so far (user + system), by thread id. */
export type ThreadCpu = Map<number, { name: string; seconds: number }>;

/** Linux's USER_HZ: /proc counts CPU time in ticks of 10 ms. */
const TICKS_PER_SECOND = 100;

/**
 * The threads of process `pid` (the main thread's id is the pid). Empty when there is no /proc or the
 * process is gone; a thread that ends between the listing and its read is left out.
 */
export function readThreadCpu(pid: number = process.pid): ThreadCpu {
  const cpu: ThreadCpu = new Map();
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return cpu;
  }
  for (const tid of tids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // The name is between the first '(' and the last ')': it may itself hold spaces or parentheses.
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      cpu.set(Number(tid), {
        name: stat.slice(stat.indexOf('(') + 1, close),
        seconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
      });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return cpu;
}

/**
 * CPU seconds spent between two readings of process `pid`, summed by the group `groupOf` gives each
 * thread (from its name, and whether it is the main thread); a thread that started after `before`
 * counts from zero. Groups appear in the order their first thread does.
 */
export function cpuByGroup(
  pid: number,
  after: ThreadCpu,
  before: ThreadCpu,
  groupOf: (name: string, main: boolean) => string,
): Record<string, number> {
  const by: Record<string, number> = {};
  for (const [tid, t] of after) {
    const group = groupOf(t.name, tid === pid);
    by[group] = (by[group] ?? 0) + t.seconds - (before.get(tid)?.seconds ?? 0);
  }
  return by;
}
