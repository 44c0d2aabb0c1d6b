// The chat page as people use it, in headless Chromium against the real hub and its simulator:
// after a reload of a long chat the newest text is in view (and stays so while it streams);
// scrolled up, it stays put and offers "Jump to latest"; Copy on a code block puts the code in
// the clipboard; Regenerate after stop writes a new answer; the conversation list survives a
// reload; an example prompt sends. Screenshots at 1280x800 and 390x844.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startHub, launchBrowser, readStream, resultsDir } from './harness.mjs';
import { openPage, ask, saved, mode, waitState, waitChars } from './chat-helpers.mjs';

let hub;
let browser;

const PACE = ['--simulator-tokens-per-second', '25', '--simulator-first-token-delay', '100ms'];

before(async () => {
  hub = await startHub(PACE);
  browser = await launchBrowser();
});
after(async () => {
  if (browser) await browser.close();
  if (hub) await hub.stop();
});

const openChat = () => openPage(browser, `${hub.url}/`);

/** Stores a finished conversation in the page's origin and makes it this tab's, then reloads. */
async function seed(page, messages, title = 'Seeded') {
  await page.evaluate(({ messages, title }) => {
    const id = crypto.randomUUID();
    const updated = Date.now();
    localStorage.setItem(`ssehub.chat.${id}`, JSON.stringify({ id, title, updated, messages, current: null }));
    const list = JSON.parse(localStorage.getItem('ssehub.chats') || '[]');
    localStorage.setItem('ssehub.chats', JSON.stringify([{ id, title, updated }, ...list]));
    sessionStorage.setItem('ssehub.chat.active', id);
  }, { messages, title });
  await page.reload();
}

/** Where the newest text is: the bottom of the last answer against the scroller's viewport. */
const view = (page) => page.evaluate(() => {
  const s = document.getElementById('scroller');
  const answers = document.querySelectorAll('.turn.assistant .answer');
  const last = answers[answers.length - 1].getBoundingClientRect();
  const box = s.getBoundingClientRect();
  return {
    lastBottomInView: last.bottom <= box.bottom + 1 && last.bottom >= box.top,
    fromBottom: s.scrollHeight - s.scrollTop - s.clientHeight,
    scrollTop: s.scrollTop,
    scrollable: s.scrollHeight > s.clientHeight * 2,
    jump: !document.getElementById('jump').hidden,
  };
});

const longText = (n) => Array.from({ length: n }, (_, i) => `Paragraph ${i}: ${'words that take room '.repeat(12)}`).join('\n\n');

describe('chat page, as people use it', () => {
  it('after a reload of a long chat mid-answer, the newest text is in view and followed', async () => {
    const { page, errors } = await openChat();
    const history = [];
    for (let i = 0; i < 6; i++) history.push({ role: 'user', content: `Question ${i}` }, { role: 'assistant', content: longText(4) });
    await seed(page, history, 'A long chat');
    await ask(page, 'One more, a long one.');
    await waitChars(page, 30);
    await page.reload();
    // Resumed, and more text has landed since the reload.
    await waitState(page, 'streaming', 15000);
    const atReload = (await saved(page)).current.text.length;
    await waitChars(page, atReload + 40);
    let v = await view(page);
    assert.ok(v.scrollable, 'the chat is not long enough to prove anything');
    assert.ok(v.lastBottomInView, 'the newest text is off-screen after the reload');
    assert.ok(v.fromBottom < 80, `the page is ${v.fromBottom}px from the bottom`);
    assert.equal(v.jump, false);
    await waitState(page, 'done');
    v = await view(page);
    assert.ok(v.lastBottomInView && v.fromBottom < 80, 'the page stopped following before the answer ended');
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('scrolled up while it streams, the page stays put and offers to jump to the latest', async () => {
    const { page } = await openChat();
    const history = [];
    for (let i = 0; i < 4; i++) history.push({ role: 'user', content: `Question ${i}` }, { role: 'assistant', content: longText(4) });
    await seed(page, history);
    await ask(page, 'Stream while I read above.');
    await waitChars(page, 20);
    await page.mouse.move(500, 300);
    await page.mouse.wheel(0, -3000);
    await page.waitForFunction(() => !document.getElementById('jump').hidden);
    const before = (await view(page)).scrollTop;
    const len = (await saved(page)).current.text.length;
    await waitChars(page, len + 40);
    const during = await view(page);
    assert.equal(during.scrollTop, before, 'the page scrolled while the reader was reading above');
    assert.ok(during.jump);
    await page.click('#jump');
    const after = await view(page);
    assert.ok(after.fromBottom < 80 && after.lastBottomInView);
    assert.equal(after.jump, false);
    await waitState(page, 'done');
    await page.close();
  });

  it('Copy on a code block puts exactly the code in the clipboard', async () => {
    const { page, errors } = await openChat();
    // A real clipboard: Chromium grants the permission through the DevTools protocol.
    const cdp = await browser.context.newCDPSession(page);
    await cdp.send('Browser.grantPermissions', {
      origin: hub.url,
      permissions: ['clipboardReadWrite', 'clipboardSanitizedWrite'],
    });
    const code = 'const es = new EventSource("/events");\nes.onmessage = (e) => console.log(e.data < 1 && "<b>");';
    await seed(page, [
      { role: 'user', content: 'Show me code' },
      { role: 'assistant', content: `Here:\n\n\`\`\`js\n${code}\n\`\`\`\n\nAnd a shell line:\n\n\`\`\`\necho hi\n\`\`\`` },
    ]);
    assert.equal(await page.locator('.code').count(), 2);
    assert.deepEqual(await page.locator('.code-head > span').allTextContents(), ['js', 'code']);
    await page.evaluate(() => navigator.clipboard.writeText('before'));
    await page.locator('.code').first().locator('button.copy').click();
    await page.waitForFunction(() => document.querySelector('.code .copy span').textContent === 'Copied');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), code);
    await page.locator('.code').nth(1).getByRole('button', { name: 'Copy code', exact: true }).click();
    await page.waitForFunction(async () => (await navigator.clipboard.readText()) === 'echo hi');
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('Regenerate after stop writes a new, complete answer to the same question', async () => {
    const { page, errors } = await openChat();
    await ask(page, 'Answer this twice.');
    await waitChars(page, 20);
    const first = (await saved(page)).current.streamId;
    await page.click('#send');
    await waitState(page, 'stopped', 15000);
    const stopped = (await saved(page)).messages[1].content;
    await page.getByRole('button', { name: 'Regenerate' }).click();
    await waitState(page, 'streaming', 15000);
    const second = (await saved(page)).current.streamId;
    assert.ok(second && second !== first, 'no new stream');
    await waitState(page, 'done');
    const s = await saved(page);
    assert.deepEqual(s.messages.map((m) => m.role), ['user', 'assistant']);
    assert.equal(s.messages[0].content, 'Answer this twice.');
    const reference = await readStream(hub.url, second);
    assert.equal(reference.finish, 'stop');
    assert.equal(s.messages[1].content, reference.text);
    assert.ok(!reference.text.startsWith(stopped), 'the regenerated answer is the stopped one again');
    assert.equal(await page.locator('.turn.assistant').count(), 1);
    // After a finished answer too.
    assert.equal(await page.getByRole('button', { name: 'Regenerate' }).count(), 1);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('the conversation list survives a reload: switch, delete, titles from the first message', async () => {
    const { page, errors } = await openChat();
    await page.evaluate(() => localStorage.clear());
    await page.reload();
    assert.equal(await page.locator('#chats li').count(), 0);
    await ask(page, 'First conversation about topics');
    await waitState(page, 'done');
    await page.click('#new-chat');
    assert.equal(await page.locator('.turn').count(), 0);
    assert.ok(await page.isVisible('#empty'));
    await ask(page, 'Second conversation about ids');
    await waitState(page, 'done');
    await page.reload();
    assert.deepEqual(await page.locator('#chats li .open').allTextContents(),
      ['Second conversation about ids', 'First conversation about topics']);
    // The reload came back to the conversation this tab showed.
    assert.equal(await page.textContent('.turn.user .text'), 'Second conversation about ids');
    await page.locator('#chats li .open', { hasText: 'First conversation' }).click();
    assert.equal(await page.textContent('.turn.user .text'), 'First conversation about topics');
    assert.ok((await page.textContent('.turn.assistant .answer')).length > 50);
    await page.getByRole('button', { name: 'Delete conversation: Second conversation about ids' }).click();
    await page.reload();
    assert.deepEqual(await page.locator('#chats li .open').allTextContents(), ['First conversation about topics']);
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('an answer still streaming in a conversation left for another resumes when switched back', async () => {
    const { page, errors } = await openChat();
    await ask(page, 'Keep writing while I look elsewhere.');
    await waitChars(page, 20);
    const { id, current } = await saved(page);
    await page.click('#new-chat');
    assert.equal(await page.locator('.turn').count(), 0);
    await ask(page, 'Meanwhile, another question.');
    await waitState(page, 'done');
    await page.locator(`#chats li[data-id="${id}"] .open`).click();
    await waitState(page, 'done');
    const back = await saved(page);
    const reference = await readStream(hub.url, current.streamId);
    assert.equal(reference.finish, 'stop');
    assert.ok(current.text.length < reference.text.length, 'the switch was not mid-answer');
    assert.equal(back.id, id);
    assert.equal(back.messages[1].content, reference.text);
    const expected = await page.evaluate(async (t) => (await import('/ssehub.js')).renderMarkdown(t), reference.text);
    assert.equal(await page.locator('.turn.assistant .answer').count(), 1);
    assert.equal((await page.textContent('.turn.assistant .answer')).length,
      await page.evaluate((h) => Object.assign(document.createElement('div'), { innerHTML: h }).textContent.length, expected));
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('an example prompt on the empty page sends it; screenshots at 1280x800 and 390x844', async () => {
    const { page, errors } = await openChat();
    await page.setViewportSize({ width: 1280, height: 800 });
    mkdirSync(resultsDir, { recursive: true });
    await page.screenshot({ path: join(resultsDir, 'chat-empty.png') });
    const example = page.locator('.example').first();
    const prompt = await example.getAttribute('data-prompt');
    await example.click();
    await waitState(page, 'streaming', 15000);
    assert.equal(await page.textContent('.turn.user .text'), prompt);
    assert.equal(await mode(page), 'stop');
    await waitState(page, 'done');
    // A code block in view, as an answer with code looks.
    const s = await saved(page);
    s.messages.push({ role: 'user', content: 'And how do I subscribe from a browser?' },
      { role: 'assistant', content: 'Open an `EventSource` on the hub:\n\n```js\nconst es = new EventSource(\'/.well-known/mercure?topic=/chat/1\');\nes.onmessage = (e) => show(JSON.parse(e.data));\n```\n\nIt reconnects by itself and sends **Last-Event-ID**, so nothing is lost.' });
    await page.evaluate((c) => localStorage.setItem(`ssehub.chat.${c.id}`, JSON.stringify(c)), s);
    await page.reload();
    await page.screenshot({ path: join(resultsDir, 'chat.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(resultsDir, 'chat-phone.png') });
    await page.click('#toggle-sidebar');
    assert.equal(await page.getAttribute('#toggle-sidebar', 'aria-expanded'), 'true');
    assert.ok(await page.isVisible('#chats'));
    await page.screenshot({ path: join(resultsDir, 'chat-phone-list.png') });
    await page.keyboard.press('Escape');
    assert.equal(await page.getAttribute('#toggle-sidebar', 'aria-expanded'), 'false');
    assert.ok(await page.isHidden('#chats'));
    await page.click('#toggle-sidebar');
    await page.mouse.click(350, 400);
    assert.ok(await page.isHidden('#chats'), 'a tap beside the drawer did not close it');
    assert.deepEqual(errors, []);
    await page.close();
  });

  it('every control has a name and Enter sends while Shift+Enter adds a line', async () => {
    const { page } = await openChat();
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, textarea, input, select')]
      .filter((el) => !(el.getAttribute('aria-label') || el.labels?.length || el.textContent.trim()))
      .map((el) => el.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
    await page.focus('#prompt');
    await page.keyboard.type('line one');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('line two');
    assert.equal(await page.inputValue('#prompt'), 'line one\nline two');
    assert.equal(await page.locator('.turn.user').count(), 0);
    await page.keyboard.press('Enter');
    await page.waitForSelector('.turn.user');
    assert.equal(await page.textContent('.turn.user .text'), 'line one\nline two');
    await waitState(page, 'done');
    await page.close();
  });
});
