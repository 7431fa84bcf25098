// The live log of a running job: server-sent events of HTML the server rendered (ANSI colours as spans,
// everything else encoded), appended as they come. At the end the page reloads to show the final state.
(() => {
  const log = document.getElementById("log");
  const state = document.getElementById("log-state");
  if (!log || !log.dataset.live) return;
  const source = new EventSource(log.dataset.live);
  const atBottom = () => window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  source.addEventListener("log", (e) => {
    const follow = atBottom();
    log.insertAdjacentHTML("beforeend", e.data);
    if (follow) window.scrollTo(0, document.body.scrollHeight);
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
