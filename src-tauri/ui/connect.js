// The connect screen: the remembered server opens at once (unless the person chose to switch);
// otherwise, or when it cannot be reached, the form asks for an address. The app checks it
// (https, /healthz, a valid certificate) before the window shows it.
const invoke = window.__TAURI__.core.invoke;
const form = document.getElementById("connect");
const input = document.getElementById("server-url");
const error = document.getElementById("error");
const button = document.getElementById("connect-button");

async function connect(url) {
  error.textContent = "";
  button.disabled = true;
  button.textContent = "Connecting…";
  try {
    await invoke("connect", { url });
  } catch (e) {
    error.textContent = String(e);
    input.setAttribute("aria-invalid", "true");
    input.focus();
  } finally {
    button.disabled = false;
    button.textContent = "Connect";
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  connect(input.value);
});
input.addEventListener("input", () => input.removeAttribute("aria-invalid"));

(async () => {
  const remembered = await invoke("remembered");
  if (remembered) {
    input.value = remembered;
    if (!new URLSearchParams(location.search).has("switch")) {
      await connect(remembered);
    }
  }
})();
