import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MllpFramer, frame, type FramerEvent } from '../../connectors/mllp-framer.ts';

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;

/** Feeds `wire` cut at `cuts`, then ends the connection. */
function feed(framer: MllpFramer, wire: Buffer, cuts: number[]): FramerEvent[] {
  const events: FramerEvent[] = [];
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    events.push(...framer.push(wire.subarray(at, cut)));
    at = cut;
  }
  events.push(...framer.push(wire.subarray(at)));
  events.push(...framer.end());
  return events;
}

type Normal = { type: string; hex: string };

/** Stray events may be split by chunk boundaries: merge neighbours of the same kind before comparing. */
function normalise(events: FramerEvent[]): Normal[] {
  const out: Normal[] = [];
  for (const e of events) {
    if (e.type === 'error') {
      out.push({ type: 'error', hex: e.error.code });
      continue;
    }
    const type = e.type === 'frame' ? 'frame' : `stray:${e.reason}`;
    const hex = (e.type === 'frame' ? e.payload : e.bytes).toString('hex');
    const last = out.at(-1);
    if (type === 'stray:outside-frame' && last?.type === type) last.hex += hex;
    else out.push({ type, hex });
  }
  return out;
}

// Any byte but VT; a CR right after an FS would be an end block, so it is replaced.
const payloadArb = fc.uint8Array({ maxLength: 300 }).map((bytes) => {
  const b = Buffer.from(bytes.map((x) => (x === VT ? 0x41 : x)));
  for (let i = 1; i < b.length; i++) if (b[i] === CR && b[i - 1] === FS) b[i] = 0x42;
  return b;
});
const garbageArb = fc
  .uint8Array({ maxLength: 20 })
  .map((bytes) => Buffer.from(bytes.map((x) => (x === VT ? 0x0a : x))));

describe('MLLP framer', () => {
  it('yields the same frames in order, and reports the bytes between them, wherever the chunks are cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(garbageArb, payloadArb), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (items, rawCuts) => {
          const wire = Buffer.concat(items.flatMap(([g, p]) => [g, frame(p)]));
          const cuts = rawCuts.map((c) => (wire.length === 0 ? 0 : c % (wire.length + 1)));
          const expected: Normal[] = [];
          for (const [g, p] of items) {
            if (g.length > 0) expected.push({ type: 'stray:outside-frame', hex: g.toString('hex') });
            expected.push({ type: 'frame', hex: p.toString('hex') });
          }
          assert.deepEqual(normalise(feed(new MllpFramer(), wire, cuts)), normalise(expected.map(toEvent)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('returns several frames from one chunk, never joined', () => {
    const wire = Buffer.concat([
      frame(Buffer.from('MSH|1')),
      frame(Buffer.from('MSH|2')),
      frame(Buffer.from('MSH|3')),
    ]);
    const events = new MllpFramer().push(wire);
    assert.deepEqual(
      events.map((e) => (e.type === 'frame' ? e.payload.toString() : e.type)),
      ['MSH|1', 'MSH|2', 'MSH|3'],
    );
  });

  it('assembles one frame delivered byte by byte, including an end block split between chunks', () => {
    const payload = Buffer.from('MSH|^~\\&|GAM|CHU-X\rPID|||123^^^CHU-X||DUPONT^Zoé\r', 'utf8');
    const wire = frame(payload);
    const framer = new MllpFramer();
    const events: FramerEvent[] = [];
    for (let i = 0; i < wire.length; i++) events.push(...framer.push(wire.subarray(i, i + 1)));
    assert.equal(events.length, 1);
    assert.equal(events[0]!.type, 'frame');
    assert.ok(events[0]!.type === 'frame' && events[0]!.payload.equals(payload));
  });

  it('keeps an FS that is not followed by CR inside the payload', () => {
    const payload = Buffer.from([0x41, FS, 0x42, FS]);
    const events = feed(new MllpFramer(), frame(payload), [2]);
    assert.deepEqual(normalise(events), [{ type: 'frame', hex: payload.toString('hex') }]);
  });

  it('accepts a frame of exactly maxFrameBytes and fails the connection one byte beyond', () => {
    const ok = feed(new MllpFramer({ maxFrameBytes: 8 }), frame(Buffer.alloc(8, 0x41)), [3]);
    assert.deepEqual(normalise(ok), [{ type: 'frame', hex: '41'.repeat(8) }]);

    const framer = new MllpFramer({ maxFrameBytes: 8 });
    const wire = Buffer.concat([
      frame(Buffer.from('small')),
      frame(Buffer.alloc(9, 0x41)),
      frame(Buffer.from('after')),
    ]);
    const events = feed(framer, wire, [12]);
    assert.deepEqual(normalise(events), [
      { type: 'frame', hex: Buffer.from('small').toString('hex') },
      { type: 'error', hex: 'MLLP_FRAME_TOO_LARGE' },
    ]);
    assert.deepEqual(framer.push(frame(Buffer.from('x'))), [], 'a failed framer takes no more input');
  });

  it('fails an endless frame without buffering past the limit', () => {
    const framer = new MllpFramer({ maxFrameBytes: 1000 });
    const events: FramerEvent[] = [...framer.push(Buffer.of(VT))];
    for (let i = 0; i < 100 && !events.some((e) => e.type === 'error'); i++) {
      events.push(...framer.push(Buffer.alloc(64, 0x41)));
    }
    assert.deepEqual(
      events.map((e) => e.type),
      ['error'],
    );
  });

  it('reports a frame cut short by a new start block, then reads the next frame', () => {
    const wire = Buffer.concat([Buffer.from([VT]), Buffer.from('MSH|lost'), frame(Buffer.from('MSH|kept'))]);
    assert.deepEqual(normalise(feed(new MllpFramer(), wire, [5])), [
      { type: 'stray:unterminated-frame', hex: Buffer.from('MSH|lost').toString('hex') },
      { type: 'frame', hex: Buffer.from('MSH|kept').toString('hex') },
    ]);
  });

  it('reports a frame left open when the connection ends', () => {
    const wire = Buffer.concat([Buffer.from([VT]), Buffer.from('MSH|half'), Buffer.of(FS)]);
    assert.deepEqual(normalise(feed(new MllpFramer(), wire, [])), [
      { type: 'stray:unterminated-frame', hex: Buffer.from('MSH|half').toString('hex') + '1c' },
    ]);
  });
});

function toEvent(n: Normal): FramerEvent {
  const bytes = Buffer.from(n.hex, 'hex');
  return n.type === 'frame'
    ? { type: 'frame', payload: bytes }
    : { type: 'stray', reason: 'outside-frame', bytes };
}
