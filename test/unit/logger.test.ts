import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../bin/logger.ts';

describe('appliance logger', () => {
  it('redacts credentials and patient fields passed by mistake, at the top and one level down', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger(sink);
    log.info(
      {
        password: 'hunter2-secret',
        req: { headers: { authorization: 'Basic YWRtaW46c2VjcmV0', cookie: 'onco_session=abc' } },
        patient: { birthName: 'DUPONT', given: 'Zoé', birthDate: '1970-01-01', ins: '1700199000000' },
        channel: 'file-drop',
      },
      'something happened',
    );
    const line = lines.join('');
    for (const secret of [
      'hunter2-secret',
      'YWRtaW46c2VjcmV0',
      'onco_session=abc',
      'DUPONT',
      'Zoé',
      '1970-01-01',
      '1700199000000',
    ]) {
      assert.ok(!line.includes(secret), `${secret} is not in the log line`);
    }
    assert.match(line, /"channel":"file-drop"/);
    assert.match(line, /\[redacted\]/);
  });
});
