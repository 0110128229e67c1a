// The fused receipt's in-flight file (channels/in-flight.ts): what a later start counts as attempts
// that died, across compactions, taken-back attempts and a line cut short by a kill.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { InFlight, type InFlightEntry } from '../../channels/in-flight.ts';
import { tempDir } from '../support/engine-harness.ts';

const entry = (n: number): InFlightEntry => ({ key: `127.0.0.1|HOP|C${n}`, digest: `d${n}` });

describe('in-flight file of the fused receipt', () => {
  let file: string;
  const journaled = new Set<string>();
  const open = () => new InFlight(file, (e) => journaled.has(e.key));

  beforeEach(() => {
    file = path.join(tempDir('onco-in-flight-'), 'in-flight', 'feed.keys');
    journaled.clear();
  });

  it('counts at the next start the attempts whose message the journal does not hold', () => {
    const first = open();
    first.begin(entry(1));
    first.begin(entry(2));
    first.begin(entry(3));
    // The process dies here: nothing ended. Message 2 had been committed before the kill.
    journaled.add(entry(2).key);
    const second = open();
    assert.equal(second.unfinishedOf(entry(1)), 1);
    assert.equal(second.unfinishedOf(entry(2)), 0);
    second.begin(entry(1));
    const third = open();
    assert.equal(third.unfinishedOf(entry(1)), 2);
    assert.equal(third.unfinishedOf(entry(3)), 1);
  });

  it('forgets an attempt once its message is journaled, and takes back one whose write failed', () => {
    const first = open();
    first.begin(entry(1));
    journaled.add(entry(1).key);
    first.end(entry(1), true);
    first.begin(entry(2));
    first.end(entry(2), false);
    first.close();
    const second = open();
    assert.equal(second.unfinishedOf(entry(1)), 0, 'journaled at start: not counted');
    assert.equal(second.unfinishedOf(entry(2)), 0, 'taken back: not counted');
  });

  it('keeps what still counts when it compacts, and drops the rest', () => {
    const first = open();
    first.begin(entry(0));
    // Died once before: counted once at the next start.
    const second = open();
    assert.equal(second.unfinishedOf(entry(0)), 1);
    second.begin(entry(1)); // in flight across the compaction
    for (let n = 2; n < 40_000; n++) {
      second.begin(entry(n));
      journaled.add(entry(n).key);
      second.end(entry(n), true);
    }
    // 40,000 lines of ~33 bytes were written: past 1 MiB the file started over from what counts.
    assert.ok(fs.statSync(file).size < 1024 * 1024, `compacted: ${fs.statSync(file).size} bytes`);
    const third = open();
    assert.equal(third.unfinishedOf(entry(0)), 1, 'an earlier death survives the compaction');
    assert.equal(third.unfinishedOf(entry(1)), 1, 'an attempt in flight survives it');
    assert.equal(third.unfinishedOf(entry(2)), 0);
  });

  it('ignores a line cut short by the kill', () => {
    const first = open();
    first.begin(entry(1));
    fs.appendFileSync(file, '["127.0.0.1|HOP|C9","d');
    const second = open();
    assert.equal(second.unfinishedOf(entry(1)), 1);
    assert.equal(second.unfinishedOf(entry(9)), 0);
  });
});
