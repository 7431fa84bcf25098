// The job page: find in the log, and the live log of a running job (server-sent events of HTML the server
// rendered: ANSI colours as spans, everything else encoded), appended as they come. At the end the page
// reloads to show the final state.
(() => {
  const log = document.getElementById("log");
  if (!log) return;

  // Find in log: every match of the typed text becomes a <mark> (text nodes split, never HTML parsed);
  // Enter moves to the next one. New live lines are searched as they arrive.
  const find = document.getElementById("find");
  const count = document.getElementById("find-count");
  let marks = [];
  let current = -1;
  const clear = () => {
    for (const mark of log.querySelectorAll("mark.find-hit")) mark.replaceWith(document.createTextNode(mark.textContent));
    log.normalize();
    marks = [];
    current = -1;
  };
  const highlight = (root) => {
    const needle = find ? find.value.toLowerCase() : "";
    if (!needle) return;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const nodes = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode()) if (!n.parentElement.closest("mark.find-hit")) nodes.push(n);
    for (let node of nodes) {
      let at = node.textContent.toLowerCase().indexOf(needle);
      while (at >= 0) {
        const match = node.splitText(at);
        node = match.splitText(needle.length);
        const mark = document.createElement("mark");
        mark.className = "find-hit";
        match.replaceWith(mark);
        mark.appendChild(match);
        marks.push(mark);
        at = node.textContent.toLowerCase().indexOf(needle);
      }
    }
  };
  const report = () => {
    if (!count) return;
    count.textContent = !find.value ? "" : marks.length === 0 ? "no match" : `${current + 1} of ${marks.length}`;
  };
  const show = (i) => {
    if (marks.length === 0) return report();
    if (current >= 0) marks[current].classList.remove("current");
    current = (i + marks.length) % marks.length;
    marks[current].classList.add("current");
    marks[current].scrollIntoView({ block: "center" });
    report();
  };
  if (find) {
    find.addEventListener("input", () => { clear(); highlight(log); show(0); });
    find.form.addEventListener("submit", (e) => { e.preventDefault(); show(current + 1); });
  }

  if (!log.dataset.live) return;
  const state = document.getElementById("log-state");
  const source = new EventSource(log.dataset.live);
  const atBottom = () => log.scrollTop + log.clientHeight >= log.scrollHeight - 40
    && window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  source.addEventListener("log", (e) => {
    const follow = atBottom();
    const chunk = document.createElement("span");
    chunk.innerHTML = e.data; // HTML the server rendered from the log (AnsiHtml): text and class-only spans
    log.appendChild(chunk);
    highlight(chunk);
    report();
    if (follow) {
      log.scrollTop = log.scrollHeight;
      window.scrollTo(0, document.body.scrollHeight);
    }
    // A step's anchor just arrived and the address asks for it: go there.
    if (location.hash && !log.dataset.jumped && chunk.querySelector(location.hash.replace(/[^#\w-]/g, ""))) {
      log.dataset.jumped = "1";
      document.querySelector(location.hash.replace(/[^#\w-]/g, "")).scrollIntoView();
    }
  });
  source.addEventListener("end", (e) => {
    source.close();
    let status = "";
    try { status = JSON.parse(e.data).status; } catch { }
    if (state) state.textContent = "The job is over" + (status ? ": " + status.replace("_", " ") : "") + ".";
    setTimeout(() => location.reload(), 1000);
  });
  source.onerror = () => { if (state && source.readyState === EventSource.CONNECTING) state.textContent = "Reconnecting…"; };
  source.onopen = () => { if (state) state.textContent = "Following the log…"; };
})();
