// The registry of everything this appliance ships. New connectors and formats register here.
import { Registry } from './registry.ts';
import { folderSourceSpec } from '../connectors/folder.ts';
import { fileWriterSpec } from '../connectors/file-writer.ts';
import { channelSourceSpec, channelWriterSpec } from '../connectors/channel-writer.ts';
import { documentRouterSpec, documentStatusSpec } from '../connectors/document-router.ts';
import { sftpPickupSpec } from '../connectors/sftp-pickup.ts';
import { rcpCdaStep } from '../transformers/rcp-document.ts';
import { storeOutboxSpec } from '../connectors/store-outbox.ts';
import { identityWriterSpec } from '../connectors/identity-writer.ts';
import { documentWriterSpec } from '../connectors/document-writer.ts';
import { sftpDropSpec } from '../connectors/sftp-drop.ts';
import { sftpPollSpec } from '../connectors/sftp-poller.ts';
import { sftpPushSpec } from '../connectors/sftp-writer.ts';
import { smtpInboxSpec } from '../connectors/smtp-inbox.ts';
import { mssanteSpec } from '../connectors/mssante.ts';
import { attachmentDispatchSpec } from '../connectors/attachment-dispatch.ts';
import { mailAttachmentsStep } from '../transformers/mime-attachments.ts';
import { mailReportStep } from '../transformers/mail-report.ts';
import { mssTrackingSpec } from '../connectors/mss-tracking.ts';
import { imapPollSpec } from '../connectors/imap.ts';
import { mllpListenerSpec, mllpSenderSpec } from '../connectors/mllp.ts';
import { httpListenerSpec, httpSenderSpec } from '../connectors/http.ts';
import { matchStepSpec } from '../transformers/match.ts';
import { hl7v2ValidateStep } from '../transformers/hl7v2.ts';
import { pamFrStep } from '../transformers/pam-fr.ts';
import { pathologyStep, molecularStep } from '../transformers/clinical-steps.ts';
import {
  cdaPdfStep,
  cdaXdmStep,
  cdaHl7v2Step,
  documentFormatStep,
  documentMailStep,
} from '../transformers/document-steps.ts';
import { orderOmlStep } from '../transformers/oml-o21.ts';

export function builtinRegistry(): Registry {
  return new Registry().register(
    folderSourceSpec,
    fileWriterSpec,
    channelWriterSpec,
    channelSourceSpec,
    storeOutboxSpec,
    documentRouterSpec,
    documentStatusSpec,
    sftpPickupSpec,
    identityWriterSpec,
    documentWriterSpec,
    sftpDropSpec(),
    sftpPollSpec,
    sftpPushSpec,
    smtpInboxSpec,
    imapPollSpec,
    mssanteSpec,
    attachmentDispatchSpec,
    mssTrackingSpec,
    mllpListenerSpec,
    mllpSenderSpec,
    httpListenerSpec,
    httpSenderSpec,
    matchStepSpec,
    hl7v2ValidateStep,
    pamFrStep,
    pathologyStep,
    molecularStep,
    rcpCdaStep,
    cdaPdfStep,
    cdaXdmStep,
    cdaHl7v2Step,
    documentFormatStep,
    documentMailStep,
    orderOmlStep,
    mailAttachmentsStep,
    mailReportStep,
  );
}
