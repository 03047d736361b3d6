// A new user's first session with the REST API, in a real browser (issue 5: "A new user opens
// /docs, authorises with the key that `make run` printed, and exercises every operation from
// the browser").
//
//   node docs.mjs <whatsapp-memory binary> <scratch folder>
//
// Starts the binary as `make run` does, on a fresh SQLite database in the scratch folder and a
// free port, in development with no API_KEYS, and reads the key it prints. Opens /docs in
// headless Chromium (playwright-core), executes one operation without authorising (401), then
// presses "Authorize", pastes the key, and for every operation in the served spec expands it,
// presses "Try it out", fills its parameters and body, presses "Execute" and checks the status
// Swagger UI shows, and that the request carried the key. Ids come from earlier answers, so
// the order matters: create first, erase last. A loopback stand-in for Twilio's media host
// serves the photo that POST /memories fetches, so GET /media/{id} has a file to return.
//
// Prints one line an operation and `browser: N passed, N failed`; exits 1 if any failed.
// Environment: BROWSER_CHROMIUM (default /usr/bin/chromium), BROWSER_SCREENSHOT (where the
// final screenshot goes; default <scratch>/docs.png), BROWSER_HEADED=1 to watch.

import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const [binary, scratch] = process.argv.slice(2);
if (!binary || !scratch) {
  console.error("usage: node docs.mjs <whatsapp-memory binary> <scratch folder>");
  process.exit(2);
}
const CHROMIUM = process.env.BROWSER_CHROMIUM || "/usr/bin/chromium";
const SCREENSHOT = process.env.BROWSER_SCREENSHOT || join(scratch, "docs.png");
const USER = "15551234567";
// The README's "Trying photos and voice notes locally" settings: media downloads go to a
// loopback stand-in for Twilio's API.
const ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN = "local-dev-token";
const STEP_TIMEOUT_MS = 30_000;

const say = (line) => console.log(`browser: ${line}`);
let passed = 0;
const failed = [];

// ---- a photo and a place to fetch it from ---------------------------------------------------

/** A 96×64 RGB gradient as a PNG: real image bytes the server types, measures and hashes. */
function gradientPng(width = 96, height = 64) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, no filter, no interlace
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then pixels
    for (let x = 0; x < width; x++) {
      row.set([Math.round((255 * x) / width), Math.round((255 * y) / height), (x * y) % 256], 1 + x * 3);
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", zlib.deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Twilio's media URL for one file, answered only with the account's Basic credentials. */
async function startMediaHost(photo) {
  const expected = "Basic " + Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString("base64");
  const path = `/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/MM0123456789abcdef0123456789abcdef/Media/ME0123456789abcdef0123456789abcdef`;
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url);
    if (req.url !== path) return res.writeHead(404).end();
    if (req.headers.authorization !== expected) return res.writeHead(401).end();
    res.writeHead(200, { "content-type": "image/png", "content-length": photo.length }).end(photo);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return { server, base, url: base + path, requests };
}

// ---- the server, started as a new user starts it --------------------------------------------

/**
 * Starts `serve` in development with no API_KEYS and waits for the key it prints and the
 * address it listens on (APP_PORT=0: the port the system picked).
 */
function startServer(mediaBase) {
  const env = {
    ...process.env,
    ENV: "development",
    APP_HOST: "127.0.0.1",
    APP_PORT: "0",
    DATABASE_URL: `sqlite://${join(scratch, "db.sqlite")}?mode=rwc`,
    STORAGE_DIR: join(scratch, "media"),
    TWILIO_ACCOUNT_SID: ACCOUNT_SID,
    TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    TWILIO_API_BASE_URL: mediaBase,
    RUST_LOG: "info",
    NO_COLOR: "1",
  };
  delete env.API_KEYS;
  const child = spawn(binary, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const log = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no key and address within 60 s:\n${output}`)), 60_000);
    const read = (data) => {
      const text = data.toString();
      log.push(text);
      output += text.replace(/\x1b\[[0-9;]*m/g, "");
      const key = output.match(/generated for this run:\s+([0-9a-f]{64})\s/);
      const address = output.match(/local_addr=(127\.0\.0\.1:\d+)/);
      if (key && address) {
        clearTimeout(timer);
        resolve({ child, key: key[1], baseUrl: `http://${address[1]}`, log });
      }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before it was ready:\n${output}`));
    });
  });
}

async function waitReady(baseUrl) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${baseUrl}/readyz`)).status === 200) return;
    } catch {
      // not accepting connections yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("GET /readyz did not answer 200 within 60 s");
}

// ---- Swagger UI, as a person uses it --------------------------------------------------------

/** The operation's block, expanded, with "Try it out" pressed. */
async function openOperation(page, tag, operationId) {
  const block = page.locator(`#operations-${tag}-${operationId}`);
  await block.scrollIntoViewIfNeeded();
  if (!(await block.evaluate((el) => el.classList.contains("is-open")))) {
    await block.locator(".opblock-summary").first().click();
  }
  // The block renders its buttons a moment after it opens: wait for them (count() would not),
  // or a busy machine leaves the inputs locked and the fill below times out.
  const tryOut = block.getByRole("button", { name: "Try it out", exact: true });
  const cancel = block.getByRole("button", { name: "Cancel", exact: true });
  await tryOut.or(cancel).first().waitFor({ timeout: STEP_TIMEOUT_MS });
  if (await tryOut.count()) await tryOut.click();
  await block.locator("button.execute").waitFor({ timeout: STEP_TIMEOUT_MS });
  return block;
}

/**
 * Fills `params` ({name: value}) and the body, presses Execute and returns what the browser
 * sent and received, and the status Swagger UI shows.
 */
async function execute(page, baseUrl, block, { method, path, params = {}, body }) {
  for (const [name, value] of Object.entries(params)) {
    // An enum parameter (`state` of listJobs) is a drop-down in Swagger UI; the rest are text boxes.
    const row = block.locator(`tr[data-param-name="${name}"]`).first();
    const select = row.locator("select");
    if (await select.count()) await select.first().selectOption(String(value));
    else await row.locator("input").first().fill(String(value));
  }
  if (body !== undefined) {
    await block.locator("textarea.body-param__text").fill(JSON.stringify(body, null, 2));
  }
  const concretePath = path.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(params[name]));
  const target = `${baseUrl}${concretePath}`;
  const responded = page.waitForResponse(
    (r) => r.request().method() === method && r.url().split("?")[0] === target,
    { timeout: STEP_TIMEOUT_MS },
  );
  // A fresh Execute replaces the previous live response; clear it so the status read below
  // is this request's.
  const clear = block.locator("button.btn-clear");
  if (await clear.count()) await clear.first().click();
  await block.locator("button.execute").click();
  const response = await responded;
  const statusCell = block.locator(".live-responses-table tr.response .response-col_status").first();
  await statusCell.waitFor({ timeout: STEP_TIMEOUT_MS });
  const shown = Number((await statusCell.textContent()).trim());
  const curl = (await block.locator(".curl-command").first().textContent().catch(() => "")) || "";
  // The ids for later steps are read off the page, as the user reads them, and must be what
  // the server sent.
  const parse = (text) => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  };
  const shownBody = block.locator(".live-responses-table tr.response .response-col_description .highlight-code pre").first();
  const json = (await shownBody.count()) ? parse(await shownBody.textContent()) : undefined;
  const sent = parse(await response.text().catch(() => ""));
  const bodyMatches = JSON.stringify(json) === JSON.stringify(sent);
  return {
    bodyMatches,
    shown,
    status: response.status(),
    authorization: (await response.request().allHeaders()).authorization,
    contentType: response.headers()["content-type"] || "",
    url: response.url(),
    curl,
    json,
  };
}

function check(name, ok, detail) {
  if (ok) {
    passed += 1;
    say(`${name}: ok${detail ? ` (${detail})` : ""}`);
  } else {
    failed.push(name);
    console.error(`browser: ${name}: FAILED${detail ? `: ${detail}` : ""}`);
  }
  return ok;
}

// ---- the session ----------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  mkdirSync(scratch, { recursive: true });
  const photo = gradientPng();
  const media = await startMediaHost(photo);
  const server = await startServer(media.base);
  // Stops the server as Ctrl-C does, and waits for it (killed if it takes over 10 s).
  const stop = () =>
    new Promise((resolve) => {
      if (server.child.exitCode !== null) return resolve();
      const timer = setTimeout(() => server.child.kill("SIGKILL"), 10_000);
      server.child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      server.child.kill("SIGINT");
    });
  process.on("exit", () => server.child.exitCode === null && server.child.kill("SIGKILL"));
  let browser;
  try {
    await waitReady(server.baseUrl);
    say(`server: ready on ${server.baseUrl}, key read from its start-up output`);

    const spec = await (await fetch(`${server.baseUrl}/openapi.json`)).json();
    const operations = [];
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        operations.push({ path, method: method.toUpperCase(), id: op.operationId, tag: op.tags[0], secured: !!op.security });
      }
    }

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: process.env.BROWSER_HEADED !== "1",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ], // and a fresh, empty profile: playwright-core makes one per launch
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    // The browser may reach the server only: Swagger UI is served by it, with nothing from
    // the internet.
    const foreign = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(server.baseUrl) && !r.url().startsWith("blob:") && !r.url().startsWith("data:")) {
        foreign.push(r.url());
      }
    });

    await page.goto(`${server.baseUrl}/docs`);
    await page.locator(".opblock").first().waitFor();
    const shownIds = await page.locator(".opblock").evaluateAll((els) => els.map((el) => el.id));
    const missing = operations.filter((op) => !shownIds.includes(`operations-${op.tag}-${op.id}`));
    check(
      "docs page",
      missing.length === 0,
      missing.length ? `not shown: ${missing.map((op) => op.id).join(", ")}` : `${operations.length} operations shown`,
    );

    // Before authorising, an operation that needs the key is refused.
    {
      const block = await openOperation(page, "Users", "listUsers");
      const r = await execute(page, server.baseUrl, block, { method: "GET", path: "/users" });
      check("without the key", r.shown === 401 && r.status === 401 && !r.authorization, `GET /users shows ${r.shown}`);
      // The documented 401 is the one the user just got, not another status's example.
      const example = await block.locator('tr.response[data-code="401"] .example').first().textContent();
      check("401 documented", /"status":\s*401/.test(example), example.replace(/\s+/g, " ").slice(0, 120));
      await block.locator(".opblock-summary").first().click(); // collapse again
    }

    // Authorize, as the README says: paste the printed key.
    await page.locator(".scheme-container button.authorize").click();
    const modal = page.locator(".modal-ux");
    await modal.locator("input").first().fill(server.key);
    await modal.locator("button.authorize").click();
    await modal.locator("button.btn-done").click();
    await modal.waitFor({ state: "detached" });
    const locked = await page.locator(".scheme-container button.authorize.locked").count();
    check("authorize", locked === 1, "key pasted into the Authorize dialog");

    const done = new Set();
    const ids = {};
    /** One operation from the browser; returns the parsed answer. */
    /** `inspect(block, answer)` looks at the open block before it is collapsed again. */
    const exercise = async (id, expected, params = {}, body, inspect) => {
      const op = operations.find((o) => o.id === id);
      if (!op) return check(id, false, "not in the served spec");
      done.add(id);
      const block = await openOperation(page, op.tag, op.id);
      let r;
      try {
        r = await execute(page, server.baseUrl, block, { method: op.method, path: op.path, params, body });
      } catch (e) {
        check(id, false, `${op.method} ${op.path}: ${e.message.split("\n")[0]}`);
        return undefined;
      }
      const keyed = !op.secured || (r.authorization === `Bearer ${server.key}` && r.curl.includes(`Bearer ${server.key}`));
      const problems = [];
      if (r.shown !== expected) problems.push(`Swagger UI shows ${r.shown}, expected ${expected}`);
      if (r.status !== r.shown) problems.push(`the response was ${r.status}`);
      if (!keyed) problems.push("the request did not carry the key");
      if (!r.bodyMatches) problems.push("the body shown is not the body received");
      const where = `${op.method} ${new URL(r.url).pathname}${new URL(r.url).search}`;
      check(id, problems.length === 0, problems.length ? `${where}: ${problems.join("; ")}` : `${where} → ${r.shown}`);
      if (inspect) await inspect(block, r);
      await block.locator(".opblock-summary").first().click(); // collapse, as a person tidies up
      return r;
    };

    await exercise("getLiveness", 200);
    await exercise("getReadiness", 200);
    const created = await exercise("createMemory", 201, { user_id: USER }, {
      text: "Lea's piano lessons with Mrs. Brandt start in September",
      labels: ["family"],
    });
    ids.memory = created?.json?.id;
    const photoMemory = await exercise("createMemory", 201, { user_id: USER }, {
      media_url: media.url,
      text: "pasta night",
      labels: ["food"],
    });
    ids.media = photoMemory?.json?.media_id;
    check("photo fetched", media.requests.length === 1 && Number.isInteger(ids.media), `media id ${ids.media}`);
    await exercise("searchMemories", 200, { query: "piano", user_id: USER, limit: 10 });
    await exercise("listMemories", 200, { user_id: USER, range: "today", limit: 10 });
    await exercise("getMemory", 200, { id: ids.memory });
    await exercise("updateMemory", 200, { id: ids.memory }, { labels: ["family", "school"] });
    await exercise("getMedia", 200, { id: ids.media }, undefined, async (block, r) => {
      // Swagger UI draws an image answer as a picture; the user sees the photo they sent.
      const img = block.locator(".live-responses-table img");
      const drawn = (await img.count()) === 1 && (await img.evaluate((el) => el.complete && el.naturalWidth)) === 96;
      check("photo shown", r.contentType === "image/png" && drawn, `served as ${r.contentType}${drawn ? ", drawn 96 px wide" : ", not drawn"}`);
      await block.screenshot({ path: SCREENSHOT.replace(/\.png$/, "") + "-media.png" });
    });
    await exercise("listUsers", 200, { limit: 10 });
    await exercise("getUser", 200, { user_id: USER });
    await exercise("updateUser", 200, { user_id: USER }, { display_name: "Ada", timezone: "Europe/Berlin" });
    await exercise("listRecentInteractions", 200, { user_id: USER, limit: 10 });
    await exercise("getAnalyticsSummary", 200);
    await exercise("exportUser", 200, { user_id: USER });
    const reminder = await exercise("createReminder", 201, { user_id: USER }, { text: "call mom", when: "tomorrow at 9" });
    ids.reminder = reminder?.json?.id;
    await exercise("listReminders", 200, { user_id: USER });
    await exercise("getReminder", 200, { id: ids.reminder });
    // The operator's view of the queue: the reminder's delivery job waits there, due
    // tomorrow; only a dead job can be retried (409), a queued one can be removed.
    const jobs = await exercise("listJobs", 200, { state: "queued", kind: "reminder.fire", limit: 10 });
    ids.job = jobs?.json?.items?.[0]?.id;
    check("reminder job listed", Number.isInteger(ids.job), `job id ${ids.job}`);
    await exercise("retryJob", 409, { id: ids.job });
    await exercise("deleteJob", 204, { id: ids.job });
    await exercise("cancelReminder", 204, { id: ids.reminder });
    // `make run` sets up no Meta Cloud API channel: both of its endpoints say so.
    await exercise("verifyCloudWebhook", 404, { "hub.mode": "subscribe", "hub.verify_token": "not-set", "hub.challenge": "1158201444" });
    await exercise("receiveCloudDelivery", 404, {}, { object: "whatsapp_business_account", entry: [] });
    await exercise("deleteMemory", 204, { id: ids.memory });
    await exercise("eraseUser", 204, { user_id: USER });

    const untried = operations.filter((op) => !done.has(op.id)).map((op) => op.id);
    check("every operation", untried.length === 0, untried.length ? `not exercised: ${untried.join(", ")}` : `${done.size} of ${operations.length}`);
    check("no script errors", pageErrors.length === 0, pageErrors.join("; "));
    check("nothing from outside", foreign.length === 0, foreign.slice(0, 3).join(", "));

    // The page as the user leaves it: every operation tried, the key in place.
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    say(`screenshot: ${SCREENSHOT}`);
  } catch (e) {
    failed.push("session");
    console.error(`browser: FAILED: ${e.stack || e}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    const alive = server.child.exitCode === null;
    await stop();
    check("server", alive && server.child.exitCode === 0, alive ? `stopped with ${server.child.exitCode}` : "it exited during the session");
    media.server.close();
    writeFileSync(join(scratch, "server.log"), server.log.join(""));
  }
  say(`session: ${((Date.now() - started) / 1000).toFixed(1)}s`);
  if (failed.length) console.error(`browser: FAILED: ${failed.join(", ")}`);
  console.log(`browser: ${passed} passed, ${failed.length} failed`);
  process.exitCode = failed.length ? 1 : 0;
}

main().catch((e) => {
  console.error(`browser: FAILED: ${e.stack || e}`);
  console.log(`browser: ${passed} passed, ${failed.length + 1} failed`);
  process.exit(1);
});
