/**
 * The tool side of GradeService's ports: our key per platform (ltijs's, kid as in /lti/keys),
 * the platform's token endpoint, and instance → (activity line item, user sub).
 */
import type { GradePorts } from './grades/GradeService.js';
import { keyProviderFrom } from './grades/clientAssertion.js';
import type { PlatformRegistry } from './platforms.js';
import { LabInstance } from '../store/LabInstance.js';
import { Activity } from '../store/Activity.js';
import { User } from '../store/User.js';

export function gradePorts(registry: PlatformRegistry): GradePorts {
  return {
    keys: keyProviderFrom((p) => registry.toolKey(p.issuer, p.clientId)),
    platforms: { tokenUrl: async (p) => (await registry.find(p.issuer, p.clientId))?.tokenUrl },
    targets: {
      async targetFor(instanceId) {
        const inst = await LabInstance.findById(instanceId, { activityId: 1, userId: 1 }).lean();
        if (!inst) return undefined;
        const [activity, user] = await Promise.all([Activity.findById(inst.activityId).lean(), User.findById(inst.userId).lean()]);
        if (!activity?.lineItemUrl || !user) return undefined;
        return { issuer: activity.issuer, clientId: activity.clientId, lineItemUrl: activity.lineItemUrl, userSub: user.sub, scoreMaximum: activity.settings?.maxScore ?? null };
      },
    },
  };
}
