//! The page object of p2pchat's web UI: what a user does on the page, by
//! name, and waits on what the page shows ([`Page`]). The selectors live
//! here and in [`super::page`]; a scenario never sees one.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tokio::task::JoinHandle;

use super::driver::{Browser, BrowserOptions, Tab, POLL};
use super::page::{Page, PAGE_JS};

/// The web UI in a headless browser.
pub struct ChatPage {
    browser: Browser,
}

impl ChatPage {
    /// Starts the browser (ChromeDriver and headless Chromium) with no
    /// page open yet.
    pub async fn launch(options: &BrowserOptions) -> Result<ChatPage> {
        Ok(ChatPage {
            browser: Browser::start(options).await?,
        })
    }

    /// Closes the browser and stops ChromeDriver.
    pub async fn close(self) {
        self.browser.close().await;
    }

    /// Opens the page at `url` in the current tab.
    pub async fn open(&self, url: &str) -> Result<()> {
        self.browser.goto(url).await
    }

    /// The renderer's counters for the current tab (Chrome DevTools
    /// `Performance.getMetrics`, collection switched on at the first
    /// call): name → value, e.g. `LayoutDuration` in seconds.
    pub async fn metrics(&self) -> Result<std::collections::BTreeMap<String, f64>> {
        self.browser
            .devtools("Performance.enable", serde_json::json!({}))
            .await?;
        let v = self
            .browser
            .devtools("Performance.getMetrics", serde_json::json!({}))
            .await?;
        Ok(v["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m["name"].as_str()?.to_owned(), m["value"].as_f64()?)))
            .collect())
    }

    /// Starts the DevTools sampling profiler in the current tab (every
    /// `interval_us` microseconds), for [`ChatPage::stop_profiler`].
    pub async fn start_profiler(&self, interval_us: u32) -> Result<()> {
        self.browser
            .devtools("Profiler.enable", serde_json::json!({}))
            .await?;
        self.browser
            .devtools(
                "Profiler.setSamplingInterval",
                serde_json::json!({ "interval": interval_us }),
            )
            .await?;
        self.browser
            .devtools("Profiler.start", serde_json::json!({}))
            .await?;
        Ok(())
    }

    /// Stops the profiler: the profile as DevTools saves it (a
    /// `.cpuprofile`: nodes with their call frames and hit counts).
    pub async fn stop_profiler(&self) -> Result<serde_json::Value> {
        let v = self
            .browser
            .devtools("Profiler.stop", serde_json::json!({}))
            .await?;
        Ok(v["profile"].clone())
    }

    /// What the page shows now.
    pub async fn look(&self) -> Result<Page> {
        let v = self
            .browser
            .execute(PAGE_JS)
            .await
            .context("reading the page")?;
        Ok(Page::from_json(&v))
    }

    /// Looks at the page until `check` finds something, for at most the
    /// timeout; the error names `what` and shows the last look.
    pub async fn wait_until<T>(&self, what: &str, check: impl Fn(&Page) -> Option<T>) -> Result<T> {
        let timeout = self.browser.timeout();
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.look().await {
                Ok(page) => match check(&page) {
                    Some(found) => return Ok(found),
                    None => page.to_string(),
                },
                // E.g. while the page reloads.
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "browser: timed out after {timeout:?} waiting for {what}\n\
                     last look at the page:\n{last}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Looks at the page until `shows` holds; returns that look.
    pub async fn wait_for(&self, what: &str, shows: impl Fn(&Page) -> bool) -> Result<Page> {
        self.wait_until(what, |p| shows(p).then(|| p.clone())).await
    }

    /// Enters `username` at the sign-in prompt and starts.
    pub async fn sign_in(&self, username: &str) -> Result<()> {
        self.browser.type_into("#username", username).await?;
        self.browser.click("#start").await
    }

    /// Creates a room called `name`.
    pub async fn create_room(&self, name: &str) -> Result<()> {
        self.browser.type_into("#new-chat-name", name).await?;
        self.browser.click("#create-chat").await
    }

    /// Joins a room by its Chat ID.
    pub async fn join(&self, chat_id: &str) -> Result<()> {
        self.browser.type_into("#join-chat-id", chat_id).await?;
        self.browser.click("#join-chat").await
    }

    /// Opens the room called `name` from the room list.
    pub async fn select_room(&self, name: &str) -> Result<()> {
        self.browser
            .click(&format!("#rooms .room[data-name=\"{}\"]", css_string(name)))
            .await
    }

    /// Writes `text` in the open room and sends it.
    pub async fn send(&self, text: &str) -> Result<()> {
        self.browser.type_into("#composer", text).await?;
        self.browser.click("#send").await
    }

    /// Scrolls the open room's timeline to its top, as a user reading
    /// back does with the mouse wheel (older messages load there; the
    /// wheel turned up is what tells the page the user left the newest).
    pub async fn scroll_timeline_to_top(&self) -> Result<()> {
        self.browser
            .execute(
                "const t = document.querySelector('#timeline'); \
                 if (t) { \
                   t.dispatchEvent(new WheelEvent('wheel', { deltaY: -120, bubbles: true, cancelable: true })); \
                   t.scrollTop = 0; \
                 } \
                 return null;",
            )
            .await
            .context("scrolling the timeline")?;
        Ok(())
    }

    /// Starts noting, in the page, the time (the page's `Date.now()`, ms
    /// since the Unix epoch) at which a timeline message with this text is
    /// first shown: read it with [`ChatPage::seen_at`]. Finer than polling
    /// the page from here.
    pub async fn watch_for(&self, text: &str) -> Result<()> {
        let text = serde_json::to_string(text)?;
        let script = format!(
            r#"const t = {text};
            window.__p2pchatSeen = window.__p2pchatSeen || {{}};
            const seen = () => Array.from(document.querySelectorAll('#timeline .message .text'))
              .some(e => e.textContent.trim() === t);
            const note = () => {{
              if (!(t in window.__p2pchatSeen) && seen()) {{ window.__p2pchatSeen[t] = Date.now(); }}
            }};
            note();
            new MutationObserver(note).observe(document.body, {{ childList: true, subtree: true, characterData: true }});
            return null;"#
        );
        self.browser
            .execute(&script)
            .await
            .context("watching the timeline")?;
        Ok(())
    }

    /// When the page first showed the text [`ChatPage::watch_for`] was
    /// told about, if it has.
    pub async fn seen_at(&self, text: &str) -> Result<Option<f64>> {
        let text = serde_json::to_string(text)?;
        let v = self
            .browser
            .execute(&format!(
                "const s = window.__p2pchatSeen || {{}}; const t = {text}; return t in s ? s[t] : null;"
            ))
            .await
            .context("reading the timeline watch")?;
        Ok(v.as_f64())
    }

    /// Presses the button that jumps back to the newest messages.
    pub async fn jump_to_newest(&self) -> Result<()> {
        self.browser.click("#jump-newest").await
    }

    /// Presses Leave in the open room (which only asks).
    pub async fn ask_to_leave(&self) -> Result<()> {
        self.browser.click("#leave-chat").await
    }

    /// Answers the question Leave asked: erase the room, or stay.
    pub async fn answer_leave(&self, leave: bool) -> Result<()> {
        let button = if leave {
            "#confirm-leave-yes"
        } else {
            "#confirm-leave-no"
        };
        self.browser.click(button).await
    }

    /// Whether any key or value in the page's storage — `localStorage`
    /// and every object store of the page's IndexedDB databases —
    /// contains `needle`.
    pub async fn storage_contains(&self, needle: &str) -> Result<bool> {
        let needle = serde_json::to_string(needle)?;
        let script = format!(
            r#"const n = {needle}; const done = arguments[arguments.length - 1];
            for (let i = 0; i < localStorage.length; i++) {{
              const k = localStorage.key(i);
              if (k.includes(n) || (localStorage.getItem(k) || '').includes(n)) return done(true);
            }}
            const has = v => (typeof v === 'string' ? v : JSON.stringify(v) || '').includes(n);
            const scan = name => new Promise(resolve => {{
              const open = indexedDB.open(name);
              open.onerror = () => resolve('cannot open ' + name);
              open.onsuccess = () => {{
                const db = open.result;
                const stores = Array.from(db.objectStoreNames);
                if (stores.length === 0) {{ db.close(); return resolve(false); }}
                const tx = db.transaction(stores, 'readonly');
                let found = false, left = stores.length;
                for (const s of stores) {{
                  const keys = tx.objectStore(s).getAllKeys(), values = tx.objectStore(s).getAll();
                  values.onsuccess = () => {{
                    found = found || keys.result.some(has) || values.result.some(has);
                    if (--left === 0) {{ db.close(); resolve(found); }}
                  }};
                }}
                tx.onerror = () => {{ db.close(); resolve('cannot read ' + name); }};
              }};
            }});
            indexedDB.databases()
              .then(dbs => Promise.all(dbs.map(d => scan(d.name))))
              .then(results => {{
                const broken = results.find(r => typeof r === 'string');
                done(broken !== undefined ? broken : results.some(r => r === true));
              }})
              .catch(e => done('cannot list the databases: ' + e));"#
        );
        let v = self
            .browser
            .execute_async(&script)
            .await
            .context("reading the page's storage")?;
        match v {
            serde_json::Value::Bool(found) => Ok(found),
            other => anyhow::bail!("reading the page's storage: {other}"),
        }
    }

    /// Reloads the page in a task of its own; await the handle for the end
    /// of the reload.
    pub fn reload_in_background(&self) -> JoinHandle<Result<()>> {
        self.browser.reload_in_background()
    }

    /// Opens the page at `url` in a new tab and switches to it; returns
    /// the tab it came from.
    pub async fn open_in_new_tab(&self, url: &str) -> Result<Tab> {
        self.browser.open_tab(url).await
    }

    /// Closes the current tab and goes back to `to`.
    pub async fn close_tab(&self, to: Tab) -> Result<()> {
        self.browser.close_tab(to).await
    }

    /// Saves a screenshot of the page at `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        self.browser.screenshot(path).await
    }

    /// The browser console and the page's HTML, for a failure report.
    pub async fn diagnostics(&self) -> String {
        self.browser.diagnostics().await
    }
}

/// `s` escaped for a double-quoted CSS string.
fn css_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
