// Browser tests: the pages as a person uses them, in Debian's headless Chromium.
// Starts `todoke demo` on a free port with a throw-away database, reads the printed demo
// logins, and drives the login flows, both languages, and the second factor.
//
//   node --test tests/browser/        (after `cargo build`; TODOKE_BIN overrides the binary)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const BIN = process.env.TODOKE_BIN || 'target/debug/todoke';
const SHOTS = 'target/browser';
let server, base, accounts, browser, dir;

function startDemo() {
  dir = mkdtempSync(join(tmpdir(), 'todoke-browser-'));
  server = spawn(BIN, ['--database', `sqlite://${dir}/demo.db`, 'demo', '--scale', 'tiny', '--bind', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const found = {};
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('demo did not start within 60 s')), 60_000);
    server.on('exit', (code) => reject(new Error(`demo exited with ${code}`)));
    createInterface({ input: server.stdout }).on('line', (line) => {
      const m = line.match(/^\s+(demo\.\w+)\s+\S+\s+\S+\s+(\S+)(?:\s+TOTP key (\S+))?/);
      if (m) found[m[1]] = { password: m[2], totp: m[3] };
      const url = line.match(/listening on (http:\/\/\S+)/);
      if (url) {
        clearTimeout(timer);
        resolve({ base: url[1], accounts: found });
      }
    });
  });
}

// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) from a base32 key, as an authenticator app computes it.
function totp(base32, unixSeconds) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/=+$/, '')) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}

before(async () => {
  ({ base, accounts } = await startDemo());
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function logIn(page, login, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel('ログイン名').fill(login);
  await page.getByLabel('パスワード').fill(password);
  await page.getByRole('button', { name: 'ログイン' }).click();
}

test('a doctor logs in with the form and sees their account in Japanese', async () => {
  const page = await browser.newPage({ locale: 'ja-JP' });
  await page.goto(`${base}/`);
  assert.equal(await page.getAttribute('html', 'lang'), 'ja');
  await page.getByRole('link', { name: 'ログイン' }).click();
  await page.getByLabel('ログイン名').fill('demo.doctor');
  await page.getByLabel('パスワード').fill(accounts['demo.doctor'].password);
  await page.getByRole('button', { name: 'ログイン' }).click();
  await page.waitForURL(`${base}/`);
  await page.getByRole('heading', { name: 'ログイン中: demo.doctor' }).waitFor();
  const text = await page.textContent('main');
  assert.match(text, /医療機関 MI1300101/);
  await page.screenshot({ path: `${SHOTS}/home-doctor-ja.png`, fullPage: true });

  await page.getByRole('link', { name: 'English' }).click();
  await page.getByRole('heading', { name: 'Signed in as: demo.doctor' }).waitFor();
  assert.match(await page.textContent('main'), /medical institution/);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await page.goto(`${base}/login`);
  assert.equal(await page.getAttribute('html', 'lang'), 'en', 'the choice of language is remembered');
  await page.getByRole('link', { name: '日本語' }).click();

  await page.goto(`${base}/`);
  await page.getByRole('button', { name: 'ログアウト' }).click();
  await page.waitForURL(`${base}/`);
  await page.getByRole('link', { name: 'ログイン' }).waitFor();
  await page.close();
});

test('a wrong password is refused on the form with the reason', async () => {
  const page = await browser.newPage({ locale: 'ja-JP' });
  await logIn(page, 'demo.hc', 'not the password');
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /ログイン名またはパスワードが正しくありません/);
  assert.equal(await page.getByLabel('ログイン名').inputValue(), 'demo.hc', 'the login is kept');
  await page.screenshot({ path: `${SHOTS}/login-refused-ja.png` });
  await page.close();
});

test('a national user passes the second factor before seeing anything', async () => {
  const page = await browser.newPage({ locale: 'ja-JP' });
  const account = accounts['demo.national'];
  assert.ok(account?.totp, 'the demo prints a TOTP key for the national account');
  await logIn(page, 'demo.national', account.password);
  await page.waitForURL(/\/login\/totp/);
  const api = await page.request.get(`${base}/api/me`);
  assert.equal(api.status(), 401, 'the password alone opens nothing');
  await page.getByLabel('ワンタイムコード').fill(totp(account.totp, Date.now() / 1000));
  await page.getByRole('button', { name: '確認' }).click();
  await page.waitForURL(`${base}/`);
  await page.getByRole('heading', { name: 'ログイン中: demo.national' }).waitFor();
  assert.match(await page.textContent('main'), /厚生労働省/);
  await page.screenshot({ path: `${SHOTS}/home-national-ja.png`, fullPage: true });
  await page.close();
});
