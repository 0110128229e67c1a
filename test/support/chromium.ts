// Headless Debian Chromium (/usr/bin/chromium, or CHROMIUM_PATH) driven by playwright-core, with a
// fresh temporary profile: launch() gives every run one of its own (no --user-data-dir allowed).
import { chromium, type Browser } from 'playwright-core';

export const launchChromium = (): Promise<Browser> =>
  chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
    ],
  });
