// jitadmin console: progressive enhancement only. Every form also works without this file.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  async function call(method, url, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const error = new Error((data && data.detail) || ("HTTP " + response.status));
      error.status = response.status;
      error.problem = data;
      throw error;
    }
    return data;
  }

  // --- copy buttons --------------------------------------------------------------------
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    return Promise.resolve();
  }

  document.querySelectorAll("[data-copy]").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", () => {
      const target = document.querySelector(button.dataset.copy);
      if (!target) return;
      const text = "value" in target && target.value !== undefined ? target.value : target.textContent;
      copyText(text.trim()).then(() => {
        const label = button.textContent;
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = label; }, 1500);
      });
    });
  });

  // --- the request form ----------------------------------------------------------------
  const form = document.getElementById("request-form");
  if (form) {
    const customer = document.getElementById("customer");
    const provider = document.getElementById("identity_provider");
    const ticket = document.getElementById("ticket_id");
    const ticketHint = document.getElementById("ticket_id-hint");
    const password = document.getElementById("password");
    const refresh = document.getElementById("refresh-password");
    let ticketRequest = 0;

    function option(value, label) {
      const item = document.createElement("option");
      item.value = value;
      item.textContent = label;
      return item;
    }

    function offerProviders() {
      const chosen = customer.selectedOptions[0];
      const configured = chosen && chosen.dataset.idps !== undefined
        ? chosen.dataset.idps.split(" ").filter(Boolean) : null;
      let firstOffered = null;
      for (const item of provider.options) {
        const offered = configured === null || configured.includes(item.value);
        item.hidden = !offered;
        item.disabled = !offered;
        if (offered && firstOffered === null) firstOffered = item;
      }
      if (provider.selectedOptions[0] && provider.selectedOptions[0].disabled && firstOffered) {
        firstOffered.selected = true;
      }
    }

    async function loadTickets() {
      const slug = customer.value;
      const keep = ticket.dataset.selected || "";
      const mine = ++ticketRequest;
      ticket.replaceChildren(option("", slug ? "Loading tickets…" : "Choose a customer first"));
      ticket.disabled = Boolean(slug);
      ticket.setAttribute("aria-busy", slug ? "true" : "false");
      ticketHint.textContent = "Open tickets of the customer, from the PSA.";
      ticketHint.classList.remove("field-error");
      if (!slug) { ticket.disabled = false; return; }
      try {
        const url = form.dataset.ticketsUrl.replace("{slug}", encodeURIComponent(slug));
        const data = await call("GET", url);
        if (mine !== ticketRequest) return; // the customer changed meanwhile
        const items = [option("", data.items.length ? "Choose a ticket…" : "No open tickets")];
        for (const t of data.items) {
          const item = option(t.id, "#" + t.number + " — " + t.summary);
          if (t.id === keep) item.selected = true;
          items.push(item);
        }
        ticket.replaceChildren(...items);
        ticketHint.textContent = data.items.length + " open ticket" + (data.items.length === 1 ? "" : "s") + ".";
      } catch (error) {
        if (mine !== ticketRequest) return;
        ticket.replaceChildren(option("", "Tickets unavailable"));
        ticketHint.textContent = "Could not load tickets: " + error.message;
        ticketHint.classList.add("field-error");
      } finally {
        if (mine === ticketRequest) {
          ticket.disabled = false;
          ticket.setAttribute("aria-busy", "false");
        }
      }
    }

    customer.addEventListener("change", () => {
      ticket.dataset.selected = "";
      offerProviders();
      loadTickets();
    });
    ticket.addEventListener("change", () => { ticket.dataset.selected = ticket.value; });

    refresh.addEventListener("click", async (event) => {
      event.preventDefault();
      refresh.disabled = true;
      try {
        const data = await call("POST", "/web/api/password");
        password.value = data.password;
        password.dispatchEvent(new Event("input"));
      } catch (error) {
        ticketHint.textContent = "";
      } finally {
        refresh.disabled = false;
      }
    });

    offerProviders();
    if (customer.value) loadTickets();
    const summary = document.getElementById("error-summary") || document.getElementById("form-alert");
    if (summary) { summary.tabIndex = -1; summary.focus(); }
  }

  // --- a grant's live state ------------------------------------------------------------
  const panel = document.getElementById("grant-status");
  function applyStatus(status) {
    if (!panel) return;
    const badge = document.getElementById("grant-state");
    if (badge.textContent !== status.label) badge.textContent = status.label;
    badge.className = "badge state-" + status.state;
    panel.dataset.state = status.state;
    const note = document.getElementById("grant-state-note");
    note.textContent = ["provisioning", "revoking"].includes(status.state)
      ? "updating…" : status.state === "pending_approval" ? "waiting for approval" : "";
    const failure = document.getElementById("grant-failure");
    if (status.failure) {
      failure.textContent = "Provisioning failed: " + status.failure;
      failure.hidden = false;
    } else if (status.state === "revoke_failed") {
      failure.textContent = "Revocation is failing and is being retried: " + (status.last_error || "");
      failure.hidden = false;
    } else {
      failure.hidden = true;
    }
    const credential = document.getElementById("grant-credential");
    if (credential && status.credential_notice) {
      credential.textContent = status.credential_notice;
      credential.hidden = false;
    } else if (credential && status.credential === "temporary_access_pass" && credential.hidden) {
      // Built from nodes, never from markup: the page's text stays text.
      const link = document.createElement("a");
      link.href = credential.dataset.grantUrl;
      link.textContent = "show it once on the grant page";
      credential.replaceChildren("A Temporary Access Pass was issued for this account: ", link,
        " and sign in with it instead of the password.");
      credential.hidden = false;
    }
    const role = document.getElementById("grant-role");
    if (role && status.role_text) {
      role.textContent = status.role_text;
      role.hidden = false;
    }
    const expires = document.getElementById("grant-expires");
    expires.textContent = status.expires_at_text;
    expires.setAttribute("datetime", status.expires_at);
    const revokeForm = document.getElementById("revoke-form");
    const extendForm = document.getElementById("extend-form");
    if (revokeForm) revokeForm.hidden = !status.may_revoke;
    if (extendForm) extendForm.hidden = !status.may_extend;
    const cancelForm = document.getElementById("cancel-form");
    if (cancelForm) cancelForm.hidden = !status.may_cancel;
    if (status.final) panel.dataset.final = "1";
  }

  if (panel) {
    const poll = async () => {
      if (panel.dataset.final) return;
      try {
        applyStatus(await call("GET", panel.dataset.statusUrl));
      } catch (error) {
        if (error.status === 401) {
          document.getElementById("grant-state-note").textContent = "Signed out: reload to sign in again.";
          return;
        }
      }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 1000);

    document.querySelectorAll("form[data-api]").forEach((apiForm) => {
      apiForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        const button = apiForm.querySelector("button[type=submit]");
        const errorBox = apiForm.querySelector(".field-error");
        const input = apiForm.querySelector("input[name=minutes]");
        button.disabled = true;
        try {
          const body = input ? { minutes: input.value.trim() } : undefined;
          applyStatus(await call("POST", apiForm.dataset.api, body));
          if (errorBox) { errorBox.hidden = true; errorBox.textContent = ""; }
          if (input) input.removeAttribute("aria-invalid");
        } catch (error) {
          let message = error.message;
          if (error.problem && error.problem.errors && error.problem.errors.length) {
            message = error.problem.errors.map((e) => e.rule).join("; ");
          }
          if (errorBox) {
            errorBox.textContent = message;
            errorBox.hidden = false;
            if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
          } else {
            document.getElementById("grant-state-note").textContent = message;
          }
        } finally {
          button.disabled = false;
        }
      });
    });
  }

  // --- a grant's ticket, as the PSA has it now (the grant page, each approvals row) ----
  document.querySelectorAll("[data-ticket-url]").forEach((ticketSummary) => {
    call("GET", ticketSummary.dataset.ticketUrl).then((t) => {
      ticketSummary.textContent = "#" + t.number + " — " + t.summary + " (" + t.status + ")";
      ticketSummary.classList.remove("hint");
    }).catch((error) => {
      ticketSummary.textContent = "Could not load the ticket: " + error.message;
    });
  });
})();
