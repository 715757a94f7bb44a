/**
 * Small tool-wide settings the operator can change at run time (one document each), e.g. the key
 * in the LTI registration URL. Values are secrets or plain strings; never logged here.
 */
import mongoose, { Schema } from 'mongoose';
import { retryUpsert } from './database.js';

export interface ToolSettingDoc {
  _id: string;
  value: string;
  updatedAt: Date;
}

const schema = new Schema<ToolSettingDoc>(
  { _id: { type: String, required: true }, value: { type: String, required: true } },
  { timestamps: { createdAt: false, updatedAt: true }, versionKey: false },
);

export const ToolSetting = mongoose.model<ToolSettingDoc>('ToolSetting', schema, 'tool_settings');

/** The setting's value; the first caller stores `initial()` (exactly one value wins under concurrency). */
export async function settingOrInit(id: string, initial: () => string): Promise<string> {
  const doc = await retryUpsert(() =>
    ToolSetting.findOneAndUpdate({ _id: id }, { $setOnInsert: { value: initial() } }, { upsert: true, new: true, lean: true }),
  );
  if (!doc) throw new Error(`setting ${id}: upsert returned no document`);
  return doc.value;
}

export async function setSetting(id: string, value: string): Promise<void> {
  await ToolSetting.updateOne({ _id: id }, { $set: { value } }, { upsert: true });
}
