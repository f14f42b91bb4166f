// The store owner's page: plain JS over the JSON API. The session cookie goes with every same-origin request;
// writes carry the CSRF token (readable cookie) in X-CSRF-Token.
"use strict";

const T = JSON.parse(document.getElementById("i18n").textContent);
const fmt = (key, values) => (T[key] || key).replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");
const $ = (id) => document.getElementById(id);

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)mostrador_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || "HTTP " + status);
    this.status = status;
    this.details = (body && body.error && body.error.details) || [];
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && !path.startsWith("/v1/auth/")) {
    window.location.assign("/");
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// A 422's details name fields like "body.name": show each message next to its input.
function showFieldErrors(form, prefix, error) {
  form.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
  form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
  let shown = false;
  for (const detail of error.details || []) {
    const field = String(detail.field || "").split(".").pop();
    const input = form.querySelector(`[name="${field}"]`);
    const slot = input && $(input.id + "-error");
    if (slot) {
      slot.textContent = detail.message;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", slot.id);
      if (!shown) input.focus();
      shown = true;
    }
  }
  return shown;
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function statusText(status) {
  return T["status_" + status] || status;
}

function badge(el, status) {
  el.textContent = statusText(status);
  el.className = "badge badge-" + status;
}

// "+5491155550000" -> "+54 9 11 5555-0000" for Argentine mobiles; other numbers keep their digits.
function prettyPhone(phone) {
  const m = /^\+549(11)(\d{4})(\d{4})$/.exec(phone || "");
  return m ? `+54 9 ${m[1]} ${m[2]}-${m[3]}` : phone || "";
}

let me = null;
async function loadMe() {
  me = await api("GET", "/v1/users/me");
  if (!me.scopes.includes("stores:write")) {
    document.querySelectorAll("[data-write]").forEach((el) => (el.hidden = true));
    const note = $("read-only");
    if (note) note.hidden = false;
  }
  return me;
}
const canWrite = () => me && me.scopes.includes("stores:write");

// --- home: log in / sign up -------------------------------------------------------------------------------
async function logIn(email, password) {
  await api("POST", "/v1/auth/login", { email, password, cookie: true });
  window.location.assign("/app");
}

function initHome() {
  const login = $("login-form");
  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { email, password } = formData(login);
    $("login-error").textContent = "";
    try {
      await logIn(email, password);
    } catch (error) {
      $("login-error").textContent = error.status === 401 ? T.wrong_login : error.message;
    }
  });
  const signup = $("signup-form");
  signup.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(signup);
    $("signup-error").textContent = "";
    try {
      await api("POST", "/v1/auth/signup", data);
      await logIn(data.email, data.password);
    } catch (error) {
      const fields = { business_name: "signup-business", email: "signup-email", password: "signup-password" };
      let shown = false;
      signup.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
      for (const detail of error.details || []) {
        const id = fields[String(detail.field || "").split(".").pop()];
        if (id) {
          $(id + "-error").textContent = detail.message;
          $(id).setAttribute("aria-invalid", "true");
          shown = true;
        }
      }
      if (!shown) $("signup-error").textContent = error.message || T.error_generic;
    }
  });
}

// --- dashboard ----------------------------------------------------------------------------------------------
function storeItem(store) {
  const li = document.createElement("li");
  li.dataset.storeId = store.id;
  const a = document.createElement("a");
  a.href = "/app/stores/" + store.id;
  a.textContent = store.name;
  const b = document.createElement("span");
  badge(b, store.status);
  li.append(a, " ", b);
  return li;
}

async function initDashboard() {
  await loadMe();
  const list = $("stores");
  const refresh = async () => {
    const page = await api("GET", "/v1/stores?limit=100");
    list.replaceChildren(...page.items.map(storeItem));
    $("no-stores").hidden = page.items.length > 0;
  };
  await refresh();
  setInterval(refresh, 3000); // the badges follow the stores' status
  if (me.scopes.includes("api_keys:read")) initKeys();
  if (me.scopes.includes("members:write")) initTeam();
  const form = $("store-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const store = await api("POST", "/v1/stores", formData(form));
      window.location.assign("/app/stores/" + store.id);
    } catch (error) {
      if (!showFieldErrors(form, "store", error)) $("store-name-error").textContent = error.message;
    }
  });
}

function removable(text, label, onRemove) {
  const li = document.createElement("li");
  li.textContent = text + " ";
  if (onRemove) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = label;
    button.setAttribute("aria-label", `${label}: ${text}`);
    button.addEventListener("click", onRemove);
    li.append(button);
  }
  return li;
}

async function initKeys() {
  $("keys-section").hidden = false;
  const writable = me.scopes.includes("api_keys:write");
  const render = async () => {
    const page = await api("GET", "/v1/api-keys");
    $("keys").replaceChildren(
      ...page.items.map((key) =>
        removable(`${key.name} (mst_${key.prefix}_…)`, T.revoke, writable && (async () => {
          await api("DELETE", "/v1/api-keys/" + key.id);
          render();
        })),
      ),
    );
  };
  const form = $("key-form");
  form.hidden = !writable;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("POST", "/v1/api-keys", formData(form));
      $("key-value").textContent = created.key;
      $("key-created").hidden = false;
      form.reset();
      render();
    } catch (error) {
      if (!showFieldErrors(form, "key", error)) $("key-name-error").textContent = error.message;
    }
  });
  render();
}

async function initTeam() {
  $("team-section").hidden = false;
  const render = async () => {
    const page = await api("GET", "/v1/invites");
    $("invites").replaceChildren(
      ...page.items.map((invite) =>
        removable(`${invite.email} (${T["role_" + invite.role] || invite.role})`, T.cancel_invite, async () => {
          await api("DELETE", "/v1/invites/" + invite.id);
          render();
        }),
      ),
    );
  };
  const form = $("invite-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("POST", "/v1/invites", formData(form));
      $("invite-url").textContent = created.url;
      $("invite-created").hidden = false;
      form.reset();
      render();
    } catch (error) {
      if (!showFieldErrors(form, "invite", error)) $("invite-email-error").textContent = error.message;
    }
  });
  render();
}

// --- store page -----------------------------------------------------------------------------------------
function initStore() {
  const root = $("store");
  const storeId = root.dataset.storeId;
  const base = "/v1/stores/" + storeId;
  let expiresAt = null;
  let status = null;

  const show = (id, visible) => ($(id).hidden = !visible);
  function problem(text, retry = true) {
    $("problem-text").textContent = text;
    show("problem", Boolean(text));
    show("retry", Boolean(text) && retry && canWrite());
  }

  function onStatus(data) {
    status = data.status;
    badge($("status-badge"), status);
    const connected = status === "connected";
    show("connected", connected);
    if (connected) $("connected").textContent = fmt("connected_as", { phone: prettyPhone(data.phone_number) });
    show("qr-box", status === "linking");
    show("link-button", status === "unlinked" && canWrite());
    const simLogout = $("sim-logout");
    if (simLogout) simLogout.hidden = !(connected && canWrite());
    const simScan = $("sim-scan");
    if (simScan) simScan.hidden = !(status === "linking" && canWrite()); // only a showing code can be scanned
    if (status === "logged_out") problem(T.logged_out);
    else if (status === "error") {
      const reason = data.reason || data.status_reason || "";
      problem(/scan|QR/i.test(reason) ? T.qr_expired : fmt("conn_error", { reason }));
    } else if (status === "reconnecting") problem(T.reconnecting, false); // it retries by itself
    else problem("");
    if (status !== "linking") expiresAt = null;
  }

  function onQr(data) {
    expiresAt = new Date(data.expires_at);
    // The SVG of the current code; the query string only defeats the image cache between codes.
    $("qr").src = `${base}/qr?format=svg&c=${encodeURIComponent(data.code.slice(-12))}`;
    $("qr").dataset.code = data.code;
    show("qr-box", true);
    tick();
  }

  function tick() {
    if (!expiresAt) {
      $("countdown").textContent = status === "linking" ? T.waiting_qr : "";
      return;
    }
    const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
    $("countdown").textContent = fmt("expires_in", { s: left });
  }
  setInterval(tick, 1000);

  // The session manager often answers (status and QR over the event stream) before the POST's own answer is
  // read: that answer is older news then, and must not put the page back to "not linked".
  let statusEvents = 0;
  async function link() {
    problem("");
    const seen = statusEvents;
    try {
      const answer = await api("POST", base + "/link");
      if (statusEvents === seen) onStatus(answer);
    } catch (error) {
      problem(error.message);
    }
  }
  $("link-button").addEventListener("click", link);
  $("retry").addEventListener("click", link);

  $("pairing-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const result = await api("POST", base + "/pairing-code", formData(form));
      $("pairing-code").textContent = result.code;
      show("pairing-result", true);
    } catch (error) {
      if (!showFieldErrors(form, "pairing", error)) $("pairing-phone-error").textContent = error.message;
    }
  });

  function listen() {
    // EventSource sends the session cookie; it reconnects by itself after a dropped connection.
    const events = new EventSource(base + "/events");
    events.addEventListener("status", (e) => {
      statusEvents += 1;
      onStatus(JSON.parse(e.data));
    });
    events.addEventListener("qr", (e) => {
      statusEvents += 1;
      onQr(JSON.parse(e.data));
    });
    events.addEventListener("pairing_code", (e) => {
      const data = JSON.parse(e.data);
      $("pairing-code").textContent = data.code;
      show("pairing-result", true);
    });
  }

  async function renderLinks() {
    const page = await api("GET", base + "/onboarding-links");
    $("links").replaceChildren(
      ...page.items.map((link) => {
        const li = document.createElement("li");
        li.textContent = `${T.expires}: ${new Date(link.expires_at).toLocaleString()} `;
        if (canWrite()) {
          const revoke = document.createElement("button");
          revoke.type = "button";
          revoke.className = "secondary";
          revoke.textContent = T.revoke;
          revoke.addEventListener("click", async () => {
            await api("DELETE", `${base}/onboarding-links/${link.id}`);
            renderLinks();
          });
          li.append(revoke);
        }
        return li;
      }),
    );
  }
  $("new-link").addEventListener("click", async () => {
    const created = await api("POST", base + "/onboarding-links", {});
    $("link-url").href = created.url;
    $("link-url").textContent = created.url;
    show("link-created", true);
    renderLinks();
  });

  renderConversations(storeId);
  setInterval(() => renderConversations(storeId), 2000);

  (async () => {
    await loadMe();
    const store = await api("GET", base);
    $("store-name").textContent = store.name;
    document.title = store.name + " · Mostrador";
    onStatus(store);
    listen();
    renderLinks();
    initBotForm(base); // after loadMe: whether the form may be changed depends on the role
    if (root.dataset.simulator === "true") initSimulator(storeId);
  })();
}

// --- bot set-up ---------------------------------------------------------------------------------------------
// Examples for a kind the store does not use yet; the fields besides language and greeting go in the JSON box.
const BOT_EXAMPLES = {
  echo: {},
  menu: {
    options: [
      { title: "Horarios", keywords: ["horario"], answer: "Abrimos de 9 a 18." },
      { title: "Hablar con una persona", handoff: true },
    ],
  },
  booking: {
    services: [{ name: "Corte", duration_minutes: 30 }],
    opening_hours: { mon: [["09:00", "13:00"]], tue: [["09:00", "13:00"]] },
  },
  orders: { catalog: [{ id: "1", name: "Medialuna", price_cents: 50000 }] },
};
const OWN_FIELDS = ["language", "greeting"];

async function initBotForm(base) {
  const form = $("bot-form");
  const kind = $("bot-kind");
  let current = await api("GET", base + "/bot");
  function fill(config) {
    $("bot-language").value = config.language || "es";
    $("bot-greeting").value = config.greeting || "";
    const details = Object.fromEntries(Object.entries(config).filter(([k]) => !OWN_FIELDS.includes(k)));
    $("bot-details").value = Object.keys(details).length ? JSON.stringify(details, null, 2) : "";
    $("bot-settings").hidden = kind.value === "echo";
  }
  kind.value = current.kind;
  fill(current.config);
  kind.addEventListener("change", () => {
    fill(kind.value === current.kind ? current.config : BOT_EXAMPLES[kind.value]);
    $("bot-saved").textContent = "";
  });
  // The kind stays disabled (as rendered) until the store's bot is loaded, and for a role that cannot change it.
  form.querySelectorAll("select, textarea").forEach((el) => (el.disabled = !canWrite()));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    $("bot-saved").textContent = "";
    form.querySelectorAll(".field-error").forEach((p) => (p.textContent = ""));
    form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
    const fail = (id, message) => {
      const slot = $(id + "-error");
      slot.textContent = slot.textContent ? slot.textContent + " " + message : message;
      $(id).setAttribute("aria-invalid", "true");
      $(id).setAttribute("aria-describedby", (id === "bot-details" ? "bot-details-hint " : "") + slot.id);
    };
    let config = {};
    if (kind.value !== "echo") {
      try {
        config = $("bot-details").value.trim() ? JSON.parse($("bot-details").value) : {};
      } catch (error) {
        fail("bot-details", fmt("bot_bad_json", { error: error.message }));
        $("bot-details").focus();
        return;
      }
      config.language = $("bot-language").value;
      const greeting = $("bot-greeting").value.trim();
      if (greeting) config.greeting = greeting;
    }
    try {
      current = await api("PUT", base + "/bot", { kind: kind.value, config });
      fill(current.config);
      $("bot-saved").textContent = T.saved;
    } catch (error) {
      // "body.config.greeting" goes next to the greeting; "body.config.options.0.title" next to the JSON.
      for (const detail of error.details || []) {
        const path = String(detail.field || "").split(".").slice(2);
        const id = path[0] === "language" || path[0] === "greeting" ? "bot-" + path[0]
          : String(detail.field).startsWith("body.kind") ? "bot-kind" : "bot-details";
        fail(id, id === "bot-details" && path.length ? `${path.join(".")}: ${detail.message}` : detail.message);
      }
      if (!(error.details || []).length) fail("bot-details", error.message);
      const first = form.querySelector("[aria-invalid]");
      if (first) first.focus();
    }
  });
}

async function renderConversations(storeId) {
  let page;
  try {
    page = await api("GET", `/web/stores/${storeId}/conversations`);
  } catch {
    return;
  }
  $("no-conversations").hidden = page.items.length > 0;
  const items = page.items.map((chat) => {
    const li = document.createElement("li");
    li.className = "conversation";
    const h = document.createElement("h3");
    h.textContent = chat.customer_name || "+" + chat.chat_jid.split("@")[0];
    li.append(h);
    if (chat.bot_paused) {
      const p = document.createElement("p");
      p.className = "paused";
      p.textContent = T.paused + " ";
      if (canWrite()) {
        const resume = document.createElement("button");
        resume.type = "button";
        resume.textContent = T.resume;
        resume.addEventListener("click", async () => {
          await api("PATCH", `/v1/stores/${storeId}/conversations/${chat.id}`, { bot_paused: false });
          renderConversations(storeId);
        });
        p.append(resume);
      }
      li.append(p);
    }
    const ol = document.createElement("ol");
    ol.className = "chat";
    for (const message of chat.messages) {
      const m = document.createElement("li");
      m.className = message.direction === "in" ? "from-customer" : "from-store";
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = (message.direction === "in" ? T.customer : T.bot) + ": ";
      m.append(who, message.text || "");
      ol.append(m);
    }
    li.append(ol);
    return li;
  });
  $("conversations").replaceChildren(...items);
}

// --- simulated phone ----------------------------------------------------------------------------------------
function initSimulator(storeId) {
  const sim = "/v1/sim/stores/" + storeId;
  const chat = $("sim-chat");
  const sent = [];
  $("sim-scan").addEventListener("click", async () => {
    try {
      await api("POST", sim + "/scan", {});
    } catch (error) {
      $("sim-error").textContent = error.message;
    }
  });
  $("sim-logout").addEventListener("click", () => api("POST", sim + "/fault", { kind: "logout" }));
  const form = $("sim-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(form);
    $("sim-error").textContent = "";
    try {
      await api("POST", sim + "/inbound", { from: data.from, text: data.text });
      sent.push({ text: data.text, at: Date.now() });
      $("sim-text").value = "";
      poll();
    } catch (error) {
      $("sim-error").textContent = error.message;
    }
  });
  async function poll() {
    const from = $("sim-from").value;
    let replies = [];
    try {
      replies = (await api("GET", `${sim}/outbound?chat=${encodeURIComponent(from)}`)).items;
    } catch {
      replies = [];
    }
    const lines = [
      ...sent.map((m) => ({ mine: true, text: m.text, at: m.at })),
      ...replies.map((r) => ({ mine: false, text: r.text, at: Date.parse(r.timestamp) })),
    ].sort((a, b) => a.at - b.at);
    chat.replaceChildren(
      ...lines.map((line) => {
        const li = document.createElement("li");
        li.className = line.mine ? "from-customer" : "from-store";
        li.textContent = line.text;
        return li;
      }),
    );
  }
  setInterval(poll, 1500);
}

// --- onboarding link page (no login: the token in the path is the credential) -------------------------------
function initOnboard() {
  const base = "/v1/onboarding/" + $("onboard").dataset.token;
  let expiresAt = null;
  let events = null;
  const show = (id, visible) => ($(id).hidden = !visible);
  function gone(doneInstead) {
    // Expired, revoked or already used: no QR code, ever again, on this page.
    if (events) events.close();
    show("link-section", false);
    $("qr").removeAttribute("src");
    show(doneInstead ? "onboard-done" : "onboard-gone", true);
  }
  function onStatus(data) {
    if (data.status === "connected") return gone(true);
    show("link-section", true);
    show("qr-box", data.status === "linking");
    show("link-button", data.status === "unlinked");
    const problem = data.status === "logged_out" ? T.logged_out
      : data.status === "error" ? (/scan|QR/i.test(data.reason || data.status_reason || "") ? T.qr_expired
        : fmt("conn_error", { reason: data.reason || data.status_reason || "" }))
      : "";
    $("problem-text").textContent = problem;
    show("problem", Boolean(problem));
  }
  setInterval(() => {
    if (expiresAt) {
      const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
      $("countdown").textContent = fmt("expires_in", { s: left });
    }
  }, 1000);
  // As on the store page: the event stream may have told newer news than the POST's own answer.
  let statusEvents = 0;
  async function link() {
    const seen = statusEvents;
    try {
      const answer = await api("POST", base + "/link");
      if (statusEvents === seen) onStatus(answer);
    } catch (error) {
      if (error.status === 404) gone(false);
    }
  }
  $("link-button").addEventListener("click", link);
  $("retry").addEventListener("click", link);
  (async () => {
    let state;
    try {
      state = await api("GET", base);
    } catch (error) {
      return gone(false);
    }
    if (state.store_name) $("onboard-title").textContent = fmt("onboard_title", { store: state.store_name });
    onStatus(state);
    if (state.status === "connected") return;
    events = new EventSource(base + "/events");
    events.addEventListener("status", (e) => {
      statusEvents += 1;
      onStatus(JSON.parse(e.data));
    });
    events.addEventListener("qr", (e) => {
      statusEvents += 1;
      const data = JSON.parse(e.data);
      expiresAt = new Date(data.expires_at);
      $("qr").src = `${base}/qr?format=svg&c=${encodeURIComponent(data.code.slice(-12))}`;
      show("qr-box", true);
    });
    // A link revoked or expired while open: the stream ends and its reconnects get a 404.
    events.addEventListener("error", async () => {
      try {
        await api("GET", base);
      } catch (error) {
        if (error.status === 404) gone(false);
      }
    });
  })();
}

// --- invite acceptance --------------------------------------------------------------------------------------
function initInvite() {
  const form = $("accept-form");
  const token = decodeURIComponent(window.location.hash.slice(1));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = formData(form);
    $("accept-error").textContent = "";
    try {
      await api("POST", "/v1/invites/accept", { token, password: data.password });
    } catch (error) {
      if (!showFieldErrors(form, "accept", error)) {
        $("accept-error").textContent = error.status === 404 ? T.invite_gone : error.message;
      }
      return;
    }
    try {
      await logIn(data.email, data.password);
    } catch {
      window.location.assign("/");
    }
  });
}

// --- every page -----------------------------------------------------------------------------------------
document.querySelectorAll("[data-logout]").forEach((button) =>
  button.addEventListener("click", async () => {
    await api("POST", "/v1/auth/logout").catch(() => null);
    window.location.assign("/");
  }),
);

const page = document.querySelector("[data-page]");
if ($("login-form")) initHome();
else if (page && page.dataset.page === "dashboard") initDashboard();
else if (page && page.dataset.page === "store") initStore();
else if (page && page.dataset.page === "onboard") initOnboard();
else if (page && page.dataset.page === "invite") initInvite();
