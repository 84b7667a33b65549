// The printable report as a PDF, rendered by headless Chromium from the same self-contained
// HTML (no network: the page loads nothing). Chromium is an optional system dependency, so
// playwright-core is loaded only when a PDF is asked for, and a missing browser is a clear
// error naming what to install, not a stack trace.
import { existsSync } from "node:fs";
import { AntidoteError } from "../errors.js";

export const CHROMIUM_ENV = "ANTIDOTE_CHROMIUM";
export const DEFAULT_CHROMIUM = "/usr/bin/chromium";

export async function renderPdf(html: string, executable?: string): Promise<Buffer> {
  const path = executable ?? process.env[CHROMIUM_ENV] ?? DEFAULT_CHROMIUM;
  if (!existsSync(path))
    throw new AntidoteError(
      "FILE_NOT_FOUND",
      `the PDF needs headless Chromium, and ${path} does not exist: install it (Debian/Ubuntu: \`apt-get install chromium\`) or set $${CHROMIUM_ENV} to its executable. Nothing was written.`,
    );
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({ executablePath: path, headless: true, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage();
    // Nothing outside the page may load: the report is self-contained by construction.
    await page.route("**/*", (route) =>
      route.request().url().startsWith("data:") ? route.continue() : route.abort(),
    );
    await page.setContent(html, { waitUntil: "load" });
    return await page.pdf({
      format: "A4",
      printBackground: true,
      margin: { top: "15mm", bottom: "15mm", left: "12mm", right: "12mm" },
    });
  } finally {
    await browser.close();
  }
}
