// Dataset versions, a page at a time.
import { get } from "../api";
import { Pager, Status, TableWrap } from "../components/ui";
import { count, short, when } from "../format";
import { useCursor, useLoad } from "../hooks";
import type { DatasetVersion, Page } from "../types";

export function Versions() {
  const pager = useCursor();
  const page = useLoad(
    () => get<Page<DatasetVersion>>("/versions", { limit: 50, cursor: pager.cursor }),
    [pager.cursor],
  );
  return (
    <>
      <h1>Dataset versions</h1>
      <Status loaded={page}>
        {(p) => (
          <>
            <TableWrap label="Dataset versions">
              <table>
                <thead>
                  <tr>
                    <th scope="col">version</th>
                    <th scope="col">name</th>
                    <th scope="col" class="num">
                      samples
                    </th>
                    <th scope="col">made by</th>
                    <th scope="col">parent</th>
                    <th scope="col">created</th>
                  </tr>
                </thead>
                <tbody>
                  {p.items.map((v) => (
                    <tr key={v.version}>
                      <td>
                        <a href={`/versions/${encodeURIComponent(v.version)}`}>{short(v.version, 32)}</a>
                      </td>
                      <td>{v.name}</td>
                      <td class="num">{count(v.sampleCount)}</td>
                      <td>{v.transform.kind}</td>
                      <td>
                        {v.parent === null ? (
                          "—"
                        ) : (
                          <a href={`/versions/${encodeURIComponent(v.parent)}`}>{short(v.parent, 24)}</a>
                        )}
                      </td>
                      <td>{when(v.createdAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </TableWrap>
            <Pager cursor={pager} next={p.nextCursor} />
          </>
        )}
      </Status>
    </>
  );
}
