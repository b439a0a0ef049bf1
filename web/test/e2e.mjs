// Drives the web page in Debian's headless Chromium (puppeteer-core, no browser download):
// the library, a video (a thumbnail seeks the player), search by keyboard (the hit plays in
// place at its time), a highlight (the reel plays; downloads listed), an upload through the
// file input with live progress. Screenshots of each view go to OUT_DIR. Prints one JSON
// object of what it saw; the Rust test (tests/tests/web.rs) checks it.
//
//   node test/e2e.mjs BASE_URL OUT_DIR UPLOAD_FILE [API_KEY]
import puppeteer from "puppeteer-core";

const [base, out, uploadFile, apiKey] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--disable-gpu"],
});
const seen = { console: [] };
try {
  const page = await browser.newPage();
  page.on("console", (m) => m.type() === "error" && seen.console.push(m.text()));
  page.on("pageerror", (e) => seen.console.push(`pageerror: ${e.message}`));
  await page.setViewport({ width: 1280, height: 900 });
  page.setDefaultTimeout(60_000);

  // The key, if the server needs one: typed into the page's key form.
  await page.goto(`${base}#/library`, { waitUntil: "networkidle0" });
  if (apiKey) {
    await page.type("#key", apiKey);
    await page.keyboard.press("Enter");
  }
  await page.waitForSelector(".card a");
  seen.cards = await page.$$eval(".card a", (as) => as.map((a) => ({ video: a.dataset.video, text: a.textContent })));
  seen.poster = await page.$eval(".card img", (img) => img.complete && img.naturalWidth);
  await page.screenshot({ path: `${out}/library.png`, fullPage: true });

  // A video: the thumbnail at 20 s seeks the player there.
  await page.focus(".card a");
  await page.keyboard.press("Enter");
  await page.waitForSelector(".thumb[data-ms='20000']");
  await page.waitForFunction(() => document.querySelector("#player").readyState >= 1);
  // By keyboard: the thumbnail is a button.
  await page.focus(".thumb[data-ms='20000']");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => Math.abs(document.querySelector("#player").currentTime - 20) < 1.5);
  seen.video = await page.evaluate(() => ({
    currentTime: document.querySelector("#player").currentTime,
    thumbs: document.querySelectorAll(".thumb").length,
    candidates: document.querySelectorAll(".lane .mark").length,
    curve: document.querySelector(".curve polyline").getAttribute("points").split(" ").length,
  }));
  await page.screenshot({ path: `${out}/video.png`, fullPage: true });

  // Search by keyboard: type, Enter, Tab to the first hit, Enter plays it in place.
  await page.goto(`${base}#/search`, { waitUntil: "networkidle0" });
  await page.focus("#query");
  await page.keyboard.type("fast motion");
  await page.select("#mode", "scene");
  await page.waitForFunction(() => document.querySelectorAll("#video option").length > 1);
  await page.select("#video", await page.$eval("#video option:nth-child(2)", (o) => o.value));
  await page.focus("#query");
  await page.keyboard.press("Enter");
  await page.waitForSelector(".hit");
  seen.hits = await page.$$eval(".hit", (hs) => hs.map((h) => ({ start_ms: Number(h.dataset.startMs), text: h.textContent, stages: h.title })));
  await page.focus(".hit");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => {
    const v = document.querySelector("#hit-player");
    return !v.hidden && v.readyState >= 2 && !v.paused && v.currentTime > 0;
  });
  await new Promise((r) => setTimeout(r, 700));
  seen.played = await page.evaluate(() => {
    const v = document.querySelector("#hit-player");
    return { currentTime: v.currentTime, paused: v.paused, src: v.currentSrc, focused: document.activeElement.className };
  });
  await page.screenshot({ path: `${out}/search.png`, fullPage: true });

  // A highlight, described in Chinese: the reel plays; its files are offered.
  await page.goto(`${base}#/highlight/new/${seen.cards[0].video}`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#slice");
  await page.type("#slice", "10");
  await page.select("#language", "zh");
  await page.click("#make");
  await page.waitForSelector("#reel", { timeout: 120_000 });
  await page.waitForFunction(() => document.querySelector("#reel").readyState >= 2);
  await page.evaluate(() => document.querySelector("#reel").play());
  await page.waitForFunction(() => document.querySelector("#reel").currentTime > 0.5);
  seen.reel = await page.evaluate(() => ({
    duration: document.querySelector("#reel").duration,
    currentTime: document.querySelector("#reel").currentTime,
    segments: document.querySelectorAll(".lane.segments .mark").length,
    events: document.querySelectorAll(".events li").length,
    downloads: [...document.querySelectorAll(".downloads a")].map((a) => a.getAttribute("href")),
    descriptions: [...document.querySelectorAll(".segments-list li")].map((li) => li.textContent),
  }));
  await page.screenshot({ path: `${out}/highlight.png`, fullPage: true });

  // An upload through the file input: per-slice progress, then the new card.
  await page.goto(`${base}#/library`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#upload-file");
  const input = await page.$("#upload-file");
  await input.uploadFile(uploadFile);
  await page.waitForFunction(() => [...document.querySelectorAll(".job p")].some((p) => /done, video/.test(p.textContent)), { timeout: 120_000 });
  seen.upload = await page.$$eval(".job p", (ps) => ps.map((p) => p.textContent));
  await page.waitForFunction((n) => document.querySelectorAll(".card a").length > n, {}, seen.cards.length);
  seen.cards_after = await page.$$eval(".card a", (as) => as.length);
  await page.screenshot({ path: `${out}/upload.png`, fullPage: true });
} catch (e) {
  seen.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
