// The page a login returns to by default (`/logged-in`): takes the token from the fragment with the served
// auth library, then shows who is logged in and the token to copy, or where to log in.
import auth from '/user/lib.mjs';

const $ = (id) => document.getElementById(id);

function show(id) {
  for (const section of ['checking', 'in', 'out', 'failed']) $(section).hidden = section !== id;
}

async function main() {
  let state;
  try {
    state = await auth.check(location.origin + '/logged-in');
  } catch (error) {
    $('why').textContent = String(error.message || error);
    show('failed');
    return;
  }
  if (state.authenticated) {
    $('name').textContent = state.profile.name;
    $('email').textContent = state.profile.email;
    $('idhash').textContent = state.profile.idhash;
    $('token').value = state.token;
    $('copy').addEventListener('click', async () => {
      $('token').select();
      try { await navigator.clipboard.writeText(state.token); $('copy').textContent = 'Copied'; } catch (e) { document.execCommand('copy'); }
    });
    $('logout').addEventListener('click', () => { auth.logout(); location.reload(); });
    show('in');
  } else {
    const list = $('providers');
    for (const [name, provider] of Object.entries(state.providers || {})) {
      const item = document.createElement('li');
      const link = document.createElement('a');
      link.href = provider.url;
      link.textContent = 'Log in with ' + (provider.name || name);
      item.append(link);
      list.append(item);
    }
    show('out');
  }
}

main();
