// The outbound MSSanté channel the mail tests share: an idle source (the test dispatches the mail)
// and `mssante` destinations, each `mail` from dcc@dcc.test unless a test names it otherwise.
import { builtinRegistry } from '../../channels/builtins.ts';
import { startEngine, type Harness } from './engine-harness.ts';
import { idleSource } from './sink.ts';

export function startMssOut(
  dataDir: string,
  destinations: object[],
  otherChannels: object[] = [],
): Promise<Harness> {
  return startEngine({
    dataDir,
    registry: builtinRegistry().register(idleSource),
    channels: [
      {
        id: 'mss-out',
        source: { type: 'test-idle' },
        destinations: destinations.map((d) => ({
          name: 'mail',
          type: 'mssante',
          from: 'dcc@dcc.test',
          ...d,
        })),
      },
      ...otherChannels,
    ],
  });
}
