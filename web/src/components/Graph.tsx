// The blast radius as an interactive graph (Cytoscape.js): source → deliveries → dataset
// versions → derived versions → models → fine-tuned models, left to right, each edge
// labelled with the number of the source's samples that flow along it and each node with
// how many it holds (and how many of those are quarantined). Clicking (or Enter on the
// list below the graph, for keyboard users) opens the node's page. Cytoscape is loaded only
// when a graph is drawn, so other pages do not pay for it.
import { useEffect, useRef } from "preact/hooks";
import { useLocation } from "preact-iso";
import { count, short } from "../format";
import type { BlastRadius } from "../types";

const COLORS: Record<BlastRadius["nodes"][number]["type"], string> = {
  source: "#b3261e",
  delivery: "#8a5a00",
  version: "#1f5fbf",
  model: "#4a3b9c",
};

export function hrefOf(node: BlastRadius["nodes"][number]): string {
  switch (node.type) {
    case "source":
      return `/sources/${encodeURIComponent(node.key)}`;
    case "version":
      return `/versions/${encodeURIComponent(node.key)}`;
    case "model":
      return `/models/${encodeURIComponent(node.key)}`;
    case "delivery":
      return `/sources/${encodeURIComponent(node.key)}`;
  }
}

export function nodeText(n: BlastRadius["nodes"][number]): string {
  const q = n.quarantined > 0 ? `, ${count(n.quarantined)} quarantined` : "";
  if (n.type === "version")
    return `${short(n.label, 28)}\n${count(n.fromSource)} of ${count(n.total)} samples${q}`;
  if (n.type === "model") return `${short(n.label, 28)}\n${count(n.fromSource)} samples reached it`;
  return `${short(n.label, 28)}\n${count(n.fromSource)} samples${q}`;
}

export function BlastRadiusGraph({ graph }: { graph: BlastRadius }) {
  const ref = useRef<HTMLDivElement>(null);
  const { route } = useLocation();
  useEffect(() => {
    const el = ref.current;
    if (el === null) return;
    let destroyed = false;
    let cy: { destroy: () => void } | undefined;
    void import("cytoscape").then(({ default: cytoscape }) => {
      if (destroyed) return;
      const instance = cytoscape({
        container: el,
        elements: [
          ...graph.nodes.map((n) => ({
            data: {
              id: n.id,
              label: nodeText(n),
              color: COLORS[n.type],
              href: n.type === "delivery" ? "" : hrefOf(n),
              quarantined: n.quarantined > 0 ? 1 : 0,
            },
          })),
          ...graph.edges
            .filter((e) => graph.nodes.some((n) => n.id === e.from) && graph.nodes.some((n) => n.id === e.to))
            .map((e, i) => ({
              data: { id: `e${i}`, source: e.from, target: e.to, label: count(e.samples) },
            })),
        ],
        // Breadth-first puts each hop on its own row; the rows are turned into columns below,
        // so the graph reads left to right like the trace it draws.
        layout: {
          name: "breadthfirst",
          directed: true,
          spacingFactor: 1,
          roots: [`source:${graph.source}`],
          transform: (_node, p) => ({ x: p.y * 2.4, y: p.x * 0.8 }),
          padding: 30,
        },
        style: [
          {
            selector: "node",
            style: {
              "background-color": "data(color)",
              label: "data(label)",
              "text-wrap": "wrap",
              "text-valign": "bottom",
              "text-margin-y": 4,
              "text-max-width": "180px",
              "font-size": 11,
              color: "#1b1b1b",
              width: 22,
              height: 22,
            },
          },
          {
            selector: "node[quarantined = 1]",
            style: { "border-width": 3, "border-color": "#1b1b1b", shape: "diamond" },
          },
          {
            selector: "edge",
            style: {
              width: 2,
              "line-color": "#8b8b8b",
              "target-arrow-color": "#8b8b8b",
              "target-arrow-shape": "triangle",
              "curve-style": "bezier",
              label: "data(label)",
              "font-size": 11,
              "text-margin-y": -9,
              "text-background-color": "#ffffff",
              "text-background-opacity": 1,
              "text-background-padding": "2px",
            },
          },
        ],
      });
      instance.on("tap", "node", (event) => {
        const node = event.target as { data: (key: string) => unknown };
        const href = node.data("href");
        if (typeof href === "string" && href !== "") route(href);
      });
      cy = instance;
    });
    return () => {
      destroyed = true;
      cy?.destroy();
    };
  }, [JSON.stringify(graph)]);
  return (
    <div
      ref={ref}
      class="graph"
      role="img"
      aria-label={`Blast radius of source ${graph.source}: ${graph.nodes.length} nodes, ${graph.edges.length} edges; the same as a list below.`}
      data-testid="blast-radius-graph"
    />
  );
}
