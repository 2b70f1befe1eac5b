// Keeps the page's live figures current: polls the API URL in the script tag's
// data-live-url every data-poll-s seconds (slower while the tab is hidden) and rewrites the
// elements marked data-live in the templates; "seated for" counts up each second between
// polls from the seat's seated_since, and the tab's title says "Seated 42 min" while the
// desk named by data-title-device is seated. Without this script the page reads the same,
// as the server rendered it.
"use strict";

(function () {
  const script = document.currentScript;
  const url = script.dataset.liveUrl;
  const pollMs = 1000 * Number(script.dataset.pollS || 5);
  const titleDevice = script.dataset.titleDevice || null;
  const HIDDEN_POLL_MS = 60000; // a background tab: its title still counts up each tick
  const MAX_RETRY_MS = 60000;
  const plainTitle = document.title;
  const titleTail = plainTitle.includes(" · ") ? plainTitle.slice(plainTitle.lastIndexOf(" · ")) : "";

  let latest = null; // the last answer, and the browser's time minus the server's then
  let skewMs = 0;
  let failures = 0;
  let timer = null;
  let polling = false;

  // As the server's format_duration filter (server/web/filters.py).
  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    seconds = Math.max(0, seconds);
    if (seconds < 60) return Math.floor(seconds) + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    return Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0") + " min";
  }

  function plural(count, word) {
    return count + " " + word + (count === 1 ? "" : "s");
  }

  // Seconds from an ISO time to the server's now, as it is now.
  function secondsSince(iso) {
    return (Date.now() - skewMs - Date.parse(iso)) / 1000;
  }

  function stretchOf(figures) {
    return figures.seated_since ? secondsSince(figures.seated_since) : 0;
  }

  function setText(element, text) {
    if (element && element.textContent !== text) element.textContent = text;
  }

  function setFigure(card, name, value, text) {
    const element = card.querySelector('[data-figure="' + name + '"]');
    if (!element) return;
    element.dataset.value = String(value);
    setText(element, text);
  }

  // A card marked data-per-desk shows the average desk's figures (today_per_desk); its
  // seat count and stretch stay the whole scope's.
  function showToday(card, today, perDesk) {
    const seated = today.seated_now;
    const now = card.querySelector(".now");
    now.classList.toggle("is-seated", seated);
    now.classList.toggle("is-free", !seated);
    now.dataset.value = String(seated);
    const single = seated ? "Seated now" : today.devices_online ? "Not seated" : "Offline";
    setText(card.querySelector('[data-live="seat-single"]'), single);
    setText(
      card.querySelector('[data-live="seat-count"]'),
      today.devices_seated + " of " + today.devices + " seated now"
    );
    card.querySelector(".stretch").hidden = !seated;
    const figures = card.dataset.perDesk && perDesk ? perDesk : today;
    setFigure(card, "seated_s", Math.round(figures.seated_s), formatDuration(figures.seated_s));
    for (const name of ["breaks", "prompts", "prompts_answered", "drills"]) {
      setFigure(card, name, figures[name], String(figures[name]));
    }
    setFigure(card, "answered_by_drill", figures.answered_by_drill, "");
    setText(card.querySelector('[data-extra="seated_s"]'), plural(figures.sessions, "session"));
    setText(
      card.querySelector('[data-extra="prompts_answered"]'),
      figures.answered_by_drill + " by a drill"
    );
    if (figures === perDesk) setFigure(card, "desks_in_use", perDesk.desks, String(perDesk.desks));
  }

  function showDevice(element, desk) {
    const online = element.querySelector('[data-live="online"]');
    if (online) {
      online.classList.toggle("online", desk.is_online);
      online.classList.toggle("offline", !desk.is_online);
      setText(online, desk.is_online ? "online" : "offline");
    }
    setText(
      element.querySelector('[data-live="figures"]'),
      formatDuration(desk.seated_s) + " seated · " + plural(desk.breaks, "break") + " · " +
        desk.prompts_answered + "/" + desk.prompts + " prompts answered · " +
        plural(desk.drills, "drill")
    );
  }

  // What changes with time alone: the stretches, "last seen ... ago" and the title.
  function tick() {
    if (!latest) return;
    for (const card of document.querySelectorAll('[data-live="today"]')) {
      const stretch = stretchOf(latest.today);
      setFigure(card, "current_stretch_s", Math.round(stretch), formatDuration(stretch));
    }
    for (const element of document.querySelectorAll("[data-device]")) {
      const desk = latest.devices[element.dataset.device];
      if (!desk) continue;
      let now = "not seated";
      if (desk.seated_now) now = "seated for " + formatDuration(stretchOf(desk));
      else if (!desk.is_online) now = "last seen " + formatDuration(secondsSince(desk.last_seen_at)) + " ago";
      setText(element.querySelector('[data-live="now"]'), now);
      setText(
        element.querySelector('[data-live="ago"]'),
        formatDuration(secondsSince(desk.last_seen_at)) + " ago"
      );
    }
    const followed = titleDevice ? latest.devices[titleDevice] : null;
    const title = followed && followed.seated_now
      ? "Seated " + formatDuration(stretchOf(followed)) + titleTail
      : plainTitle;
    if (document.title !== title) document.title = title;
  }

  function show(answer) {
    latest = answer;
    skewMs = Date.now() - Date.parse(answer.now);
    for (const card of document.querySelectorAll('[data-live="today"]')) {
      showToday(card, answer.today, answer.today_per_desk);
    }
    for (const element of document.querySelectorAll("[data-device]")) {
      const desk = answer.devices[element.dataset.device];
      if (desk) showDevice(element, desk);
    }
    tick();
    document.documentElement.dataset.liveAt = answer.now;
  }

  function nextDelay() {
    const base = document.visibilityState === "hidden" ? Math.max(pollMs, HIDDEN_POLL_MS) : pollMs;
    return Math.min(base * 2 ** failures, Math.max(base, MAX_RETRY_MS));
  }

  async function poll() {
    if (polling) return; // the running poll sets the next one
    polling = true;
    clearTimeout(timer);
    try {
      const response = await fetch(url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      show(await response.json());
      failures = 0;
    } catch (error) {
      // The figures shown stay, and keep counting; the next try waits longer.
      failures = Math.min(failures + 1, 6);
      console.warn("sitwatch live figures:", error.message);
    } finally {
      polling = false;
    }
    timer = setTimeout(poll, nextDelay());
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") poll();
  });
  setInterval(tick, 1000);
  poll();
})();
