-- Up Migration
-- The create saga's take now places the record as well (src/exports/sagas/create.ts: steps take,
-- attach, live; before: take, place, attach, live). Sagas in flight from the previous release
-- move onto the new steps, or a worker of this release would refuse to drive them: before the
-- attach they start again at take (its replay finds the record unplaced and unwinds it to
-- requested, so the coordinator starts a fresh saga); from the attach on they go one step down,
-- the placement folded into take's output as `node`.
update gk_public.sagas s
   set steps = '{take,attach,live}',
       step = case when s.step <= 1 then 0 else s.step - 1 end,
       outputs = case when s.step <= 1 then '{}'::jsonb
                      else (s.outputs - 'take' - 'place')
                           || jsonb_build_object('take', (s.outputs -> 'take') || jsonb_build_object('node', s.outputs -> 'place'))
                 end
 where s.name = 'exports__create' and s.finished_at is null and s.steps = '{take,place,attach,live}';

-- Down Migration
