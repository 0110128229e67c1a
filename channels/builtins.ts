// The registry of everything this appliance ships. New connectors and formats register here.
import { Registry } from './registry.ts';
import { folderSourceSpec } from '../connectors/folder.ts';
import { fileWriterSpec } from '../connectors/file-writer.ts';
import { channelWriterSpec } from '../connectors/channel-writer.ts';
import { matchStepSpec } from '../transformers/match.ts';

export function builtinRegistry(): Registry {
  return new Registry().register(folderSourceSpec, fileWriterSpec, channelWriterSpec, matchStepSpec);
}
