// What the chat page tests share: opening the page with its errors collected, asking, and
// reading the page's state and stored conversation.

/** Opens `url` in a new tab of `browser`; `errors` collects page errors and console errors. */
export async function openPage(browser, url) {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(url);
  return { page, errors };
}

export async function ask(page, prompt) {
  await page.fill('#prompt', prompt);
  await page.click('#send');
}

export const state = (page) => page.getAttribute('#state', 'data-state');

/** The conversation this tab shows, as the page stored it. */
export const saved = (page) => page.evaluate(() => {
  const id = sessionStorage.getItem('ssehub.chat.active');
  return id ? JSON.parse(localStorage.getItem(`ssehub.chat.${id}`)) : null;
});

/** `send` or `stop`: what the one composer button does now. */
export const mode = (page) => page.getAttribute('#send', 'data-mode');

export const waitState = (page, s, timeout = 60000) =>
  page.waitForFunction((want) => document.getElementById('state').dataset.state === want, s, { timeout });

/** Waits until the last answer on the page holds at least `n` characters. */
export const waitChars = (page, n) =>
  page.waitForFunction((min) => {
    const all = document.querySelectorAll('.turn.assistant .answer');
    return all.length > 0 && all[all.length - 1].textContent.length >= min;
  }, n, { timeout: 30000 });
