// Registered models.
import { get } from "../api";
import { Status, TableWrap } from "../components/ui";
import { short, when } from "../format";
import { useLoad } from "../hooks";
import type { Model } from "../types";

export function Models() {
  const models = useLoad(() => get<Model[]>("/models"), []);
  return (
    <>
      <h1>Models</h1>
      <Status loaded={models}>
        {(list) =>
          list.length === 0 ? (
            <p class="muted">No model is registered (antidote model register, or POST /v1/models).</p>
          ) : (
            <TableWrap label="Models">
              <table>
                <thead>
                  <tr>
                    <th scope="col">name</th>
                    <th scope="col">digest</th>
                    <th scope="col">trained on</th>
                    <th scope="col">base model</th>
                    <th scope="col">registered</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((m) => (
                    <tr key={m.digest}>
                      <td>
                        <a href={`/models/${m.digest}`}>{m.name}</a>
                      </td>
                      <td class="mono">{short(m.digest, 12)}</td>
                      <td>{m.trainedOn.length} versions</td>
                      <td class="mono">{m.baseModel === null ? "—" : short(m.baseModel, 12)}</td>
                      <td>{when(m.registeredAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
          )
        }
      </Status>
    </>
  );
}
