// The registry of everything this appliance ships. New connectors and formats register here.
import { Registry } from './registry.ts';
import { folderSourceSpec } from '../connectors/folder.ts';
import { fileWriterSpec } from '../connectors/file-writer.ts';
import { channelWriterSpec } from '../connectors/channel-writer.ts';
import { identityWriterSpec } from '../connectors/identity-writer.ts';
import { documentWriterSpec } from '../connectors/document-writer.ts';
import { sftpDropSpec } from '../connectors/sftp-drop.ts';
import { sftpPollSpec } from '../connectors/sftp-poller.ts';
import { sftpPushSpec } from '../connectors/sftp-writer.ts';
import { mllpListenerSpec, mllpSenderSpec } from '../connectors/mllp.ts';
import { httpListenerSpec, httpSenderSpec } from '../connectors/http.ts';
import { matchStepSpec } from '../transformers/match.ts';
import { hl7v2ValidateStep } from '../transformers/hl7v2.ts';
import { pamFrStep } from '../transformers/pam-fr.ts';
import { pathologyStep, molecularStep } from '../transformers/clinical-steps.ts';

export function builtinRegistry(): Registry {
  return new Registry().register(
    folderSourceSpec,
    fileWriterSpec,
    channelWriterSpec,
    identityWriterSpec,
    documentWriterSpec,
    sftpDropSpec(),
    sftpPollSpec,
    sftpPushSpec,
    mllpListenerSpec,
    mllpSenderSpec,
    httpListenerSpec,
    httpSenderSpec,
    matchStepSpec,
    hl7v2ValidateStep,
    pamFrStep,
    pathologyStep,
    molecularStep,
  );
}
