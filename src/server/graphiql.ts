// GraphiQL (Ruru) as an operator uses it: paste the token into the Headers tab, run a query.
// Ruru introspects once, on load, with the headers it has then (the placeholder, so a 401) and
// GraphiQL shows "Error fetching schema" until a manual re-fetch; and it forgets the headers on
// reload. Ruru's own init script is replaced (the `ruru.htmlParts.bodyInitScript` extension
// point) by one that renders the same Ruru with two more props (Ruru hands the ones it does not
// use to GraphiQL's provider):
//  - `shouldPersistHeaders: true`: GraphiQL keeps each tab's headers in this browser's
//    localStorage, so a reload keeps the token and the first introspection succeeds (the
//    "persist headers" switch in GraphiQL's settings, shown by `showPersistHeadersSettings`,
//    turns it off again, and GraphiQL then remembers that choice);
//  - `fetcher`: a plain fetch of the endpoint. GraphiQL's first introspection carries no headers
//    at all (its header editor is not there yet), so a request without headers gets those of the
//    last successful request in this browser; and after the first successful request while the
//    schema could not be loaded, Ruru is rendered again with a new fetcher — GraphiQL
//    introspects again whenever its fetcher changes, so the docs pane fills in by itself.
// The token is never sent by the server; it stays in the browser that pasted it.

/** localStorage key of the headers of the last successful request (used when GraphiQL sends none). */
export const GRAPHIQL_HEADERS_KEY = "groundskeeper:graphiql:headers";

interface BakedClientConfig {
  staticPath: string;
  endpoint?: string;
}

export function graphiqlInitScript(_original: string, clientConfig: BakedClientConfig): string {
  const ruruJs = JSON.stringify(`${clientConfig.staticPath}ruru.js`);
  const endpoint = JSON.stringify(clientConfig.endpoint ?? "/graphql");
  return `
    <script type="module">
      import { React, createRoot, Ruru } from ${ruruJs};
      const KEY = ${JSON.stringify(GRAPHIQL_HEADERS_KEY)};
      const ENDPOINT = ${endpoint};
      const root = createRoot(document.getElementById("ruru-root"));
      let schemaLoaded = false;
      const isIntrospection = (params) => params.operationName === "IntrospectionQuery" || /^\\s*query\\s+IntrospectionQuery\\b/.test(params.query ?? "");
      const saved = () => { try { return JSON.parse(window.localStorage.getItem(KEY) ?? "{}"); } catch { return {}; } };
      const makeFetcher = () => async (params, opts) => {
        // GraphiQL introspects on load before its header editor exists, so without any headers:
        // those of the last successful request in this browser stand in for them.
        const given = opts?.headers ?? {};
        const headers = Object.keys(given).length ? given : saved();
        const res = await fetch(ENDPOINT, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json", ...headers },
          body: JSON.stringify(params),
        });
        const text = await res.text();
        let body;
        try { body = JSON.parse(text); } catch { body = { errors: [{ message: "HTTP " + res.status + ": " + text.slice(0, 200) }] }; }
        if (res.ok) {
          if (Object.keys(given).length) try { window.localStorage.setItem(KEY, JSON.stringify(given)); } catch {}
          if (isIntrospection(params)) schemaLoaded = true;
          else if (!schemaLoaded) {
            schemaLoaded = true;
            setTimeout(render, 0); // a new fetcher: GraphiQL fetches the schema again
          }
        } else if (isIntrospection(params)) schemaLoaded = false;
        return body;
      };
      function render() {
        root.render(React.createElement(Ruru, { shouldPersistHeaders: true, ...RURU_CONFIG, fetcher: makeFetcher() }));
      }
      render();
    </script>`;
}
