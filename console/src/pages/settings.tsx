// Settings > Threat Exchange: how indicators merge across sources, and whether inactive ones are deleted.
import { useEffect, useState } from "preact/hooks";
import { api, ok } from "../api";
import { CheckField, Notice, Page, SelectField, useForm, useLoad, useSession } from "../ui";

const CRITERIA: [string, string][] = [
  ["lastSeen", "Last seen: the newest sighting's values win"],
  ["firstSeen", "First seen: the first sighting's values win"],
  ["highestSeverity", "Highest severity wins"],
];

export function ExchangeSettings() {
  const session = useSession();
  const writer = session.can("settings_write");
  const current = useLoad(() => ok(api.GET("/api/settings/cte")));
  const form = useForm({ criterion: "lastSeen", deleteInactiveIndicators: false });
  const [saved, setSaved] = useState<string | null>(null);
  useEffect(() => {
    if (current.data) form.setValues({ ...current.data });
  }, [current.data]);
  const submit = (e: Event) => {
    e.preventDefault();
    setSaved(null);
    void form.submit(async () => {
      const body = { criterion: form.values.criterion as "lastSeen", deleteInactiveIndicators: form.values.deleteInactiveIndicators };
      current.setData(await ok(api.PATCH("/api/settings/cte", { body })));
      setSaved("Saved.");
    });
  };
  return (
    <Page title="Threat Exchange">
      <Notice message={current.error} />
      <form onSubmit={submit} aria-label="Threat Exchange settings">
        <Notice message={form.message} />
        <Notice message={saved} kind="info" />
        <fieldset disabled={!writer}>
          <SelectField label="Merge criterion" value={form.values.criterion} options={CRITERIA} onChange={(x) => form.set("criterion", x)} error={form.errors.criterion} />
          <CheckField label="Delete inactive indicators" checked={form.values.deleteInactiveIndicators} onChange={(x) => form.set("deleteInactiveIndicators", x)} error={form.errors.deleteInactiveIndicators} />
          {writer && (
            <div class="form-actions">
              <button type="submit" class="primary" disabled={form.busy}>Save</button>
            </div>
          )}
        </fieldset>
      </form>
    </Page>
  );
}
