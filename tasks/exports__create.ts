// The create saga of an export (src/exports/sagas/create.ts).
import { createExport } from "../src/exports/sagas/create.ts";

export default createExport.task;
